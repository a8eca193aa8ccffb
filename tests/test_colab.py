"""vae_course.colab.checkpoint_folder: Google Drive in Colab, the local runs/ folder elsewhere.

Outside Colab it is tested as it runs here. For Colab, a subprocess gets a small
``google.colab.drive`` module on its path that stands in for *Google's* mount
service (``mount`` makes the ``MyDrive`` folder, or raises as Colab does when the
learner says no); ``checkpoint_folder`` itself runs unchanged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_testing import ROOT
from vae_course.colab import checkpoint_folder, drive_run_folder, in_colab


def test_outside_colab_it_is_the_local_runs_folder_and_creates_nothing(tmp_path: Path, monkeypatch):
    assert not in_colab()
    monkeypatch.chdir(tmp_path)
    assert checkpoint_folder("06_conv_vae") == Path("runs/06_conv_vae")
    assert checkpoint_folder("06_conv_vae", local_root=tmp_path / "elsewhere") == tmp_path / "elsewhere/06_conv_vae"
    assert list(tmp_path.iterdir()) == [], "outside Colab nothing is created (the trainer makes the folder)"


@pytest.mark.parametrize("name", ["", "../up", "a/b", "/abs", ".hidden"])
def test_a_name_that_is_not_a_plain_folder_is_refused(name: str):
    with pytest.raises(ValueError, match="not a plain folder name"):
        checkpoint_folder(name)


def test_the_drive_folder_is_under_the_course_folder_of_my_drive():
    assert drive_run_folder("/content/drive", "06_conv_vae") == Path("/content/drive/MyDrive/vae-course/runs/06_conv_vae")


def run_in_fake_colab(tmp_path: Path, mount_body: str) -> tuple[dict, str]:
    """Run checkpoint_folder in a Python whose ``google.colab.drive.mount`` does ``mount_body``."""
    package = tmp_path / "site" / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "drive.py").write_text("import os\n\n\ndef mount(mountpoint):\n"
                                      + textwrap.indent(textwrap.dedent(mount_body), "    "))
    code = textwrap.dedent(f"""
        import json, os, sys
        import google.colab  # what Colab's kernel has imported before the first cell
        from vae_course.colab import checkpoint_folder
        os.chdir({str(tmp_path)!r})
        first = checkpoint_folder("06_conv_vae", mount_point={str(tmp_path / "drive")!r})
        again = checkpoint_folder("06_conv_vae", mount_point={str(tmp_path / "drive")!r})
        print(json.dumps({{"first": str(first), "again": str(again)}}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    *said, result = proc.stdout.strip().splitlines()
    return json.loads(result), "\n".join(said)


def test_in_colab_it_mounts_drive_once_and_returns_a_folder_there(tmp_path: Path):
    result, said = run_in_fake_colab(tmp_path, """
        calls = os.path.join(os.path.dirname(mountpoint), "mount-calls")
        with open(calls, "a") as f:
            f.write("mount\\n")
        os.makedirs(os.path.join(mountpoint, "MyDrive"))
    """)
    expected = tmp_path / "drive" / "MyDrive" / "vae-course" / "runs" / "06_conv_vae"
    assert result == {"first": str(expected), "again": str(expected)}
    assert expected.is_dir()
    assert (tmp_path / "mount-calls").read_text() == "mount\n", "an already mounted Drive is not asked for again"
    assert said.count("Checkpoints go to your Google Drive") == 2 and "time-out cannot erase" in said


def test_in_colab_a_refusal_falls_back_to_the_local_folder_and_says_so(tmp_path: Path):
    result, said = run_in_fake_colab(tmp_path, """
        raise ValueError("mount failed: credential propagation was unsuccessful")
    """)
    assert result == {"first": "runs/06_conv_vae", "again": "runs/06_conv_vae"}
    lines = said.splitlines()
    assert len(lines) == 2 and all(line.startswith("Google Drive is not mounted (ValueError: mount failed") for line in lines)
    assert "which a Colab time-out erases" in lines[0]
    assert not (tmp_path / "runs").exists()
