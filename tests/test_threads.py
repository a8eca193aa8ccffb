"""The CPU thread count: one thread per core nothing else keeps busy, measured at the start."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from course_testing import cli_env, run_cli
from vae_course.run_log import read_events
from vae_course.threads import BUSY_CPU, choose_cpu_threads, fair_threads

LINUX = os.path.isfile("/proc/stat")


@pytest.mark.parametrize("available, busy, cpus, expected", [
    (2, None, 2, 2), (2, 0.0, 2, 2), (2, BUSY_CPU - 0.01, 2, 2), (2, BUSY_CPU, 2, 1), (2, 1.0, 2, 1),
    (2, 1.9, 2, 1), (8, 1.0, 8, 7), (8, 2.6, 8, 5), (8, 30.0, 8, 1), (1, 1.0, 1, 1),
    (4, 1.0, 8, 4), (4, 4.2, 8, 4), (4, 5.0, 8, 3),  # 4 cores, 8 hyper-threads: busy CPUs beyond the free ones
    (1, 1.0, 2, 1),  # Colab: one core, two vCPUs, torch uses 1
])
def test_fair_threads(available, busy, cpus, expected):
    assert fair_threads(available, busy, cpus) == expected


def test_a_requested_count_is_used_as_given():
    before = torch.get_num_threads()
    try:
        assert choose_cpu_threads(1) is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_is_the_users_choice(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    assert choose_cpu_threads() is None and torch.get_num_threads() == before


def _busy_neighbour():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    return proc


@pytest.mark.skipif(not LINUX or (os.cpu_count() or 1) < 2, reason="needs /proc/stat and 2 cores")
def test_the_cli_trains_with_one_thread_fewer_beside_a_busy_process(tmp_path):
    env = {k: v for k, v in cli_env().items() if k != "OMP_NUM_THREADS"}
    default = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                                 capture_output=True, text=True, check=True, timeout=120).stdout)
    threads = fair_threads(default, 1.0, os.cpu_count())  # the neighbour keeps one logical CPU busy
    if threads >= default:  # e.g. one core with two hyper-threads, or more CPUs than torch's threads
        pytest.skip(f"torch's {default} thread(s) and one busy CPU fit in {os.cpu_count()}: nothing to lower")
    neighbour = _busy_neighbour()
    try:
        p = run_cli("train", "--epochs", "1", "--limit-train", "300", "--limit-test", "50", "--device", "cpu",
                    "--out", str(tmp_path / "a"), "--no-progress", env=env)
    finally:
        neighbour.kill()
        neighbour.wait()
    assert p.returncode == 0, p.stderr
    note = [ln for ln in p.stdout.splitlines() if ln.startswith("Other processes keep")]
    assert len(note) == 1 and f"instead of {default}" in note[0] and f"--threads {default}" in note[0], p.stdout
    assert "logical CPUs busy" in note[0] and "OMP_NUM_THREADS" in note[0]
    assert read_events(tmp_path / "a")[0]["device"] == f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def test_threads_flag_overrides_and_is_bounded(tmp_path):
    p = run_cli("train", "--epochs", "1", "--limit-train", "300", "--limit-test", "50", "--device", "cpu",
                "--threads", "1", "--out", str(tmp_path / "b"), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "Other processes keep" not in p.stdout
    assert read_events(tmp_path / "b")[0]["device"] == "cpu (1 thread)"
    bad = run_cli("train", "--threads", "100000", "--out", str(tmp_path / "c"))
    assert bad.returncode == 2 and "--threads" in bad.stderr
