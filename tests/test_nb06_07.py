"""Tests for what notebooks 6 and 7 show: notebook 7's story sections and verdicts,
notebook 6's metadata and table, and the committed long-run results file."""
import json
import math
import re
from pathlib import Path

import pytest
import torch

from vae_course.models import VAE

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------- notebook 7 closes the course's stories
# (issue 13, item 3): its sections 7-10 measure, print a verdict computed from the numbers,
# show a figure with alt text, and keep prose free of hand-typed measurements.
import ast  # noqa: E402

import nbformat  # noqa: E402

from course_testing import needs_mnist  # noqa: E402
from vae_course import latent_metrics  # noqa: E402
from vae_course.models import Autoencoder  # noqa: E402

NB7 = ROOT / "notebooks" / "07_latent_space.ipynb"
STORY_SECTIONS = {  # heading prefix -> a call the section's measurement makes
    "## 7. ": "latent_metrics.latent_space_report(",
    "## 8. ": "generalization.overfitting_experiment(",
    "## 9. ": "uncertainty.uncertainty_table(",
    "## 10. ": "probes.compare_features(",
}


def _nb7_sections() -> dict[str, list]:
    """The cells of each ``## `` section of notebook 7, keyed by the heading's first line."""
    sections, current = {}, None
    for cell in nbformat.read(NB7, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            current = cell.source.splitlines()[0]
            sections[current] = []
        if current is not None:
            sections[current].append(cell)
    return sections


def _story(prefix: str) -> list:
    (cells,) = [cells for heading, cells in _nb7_sections().items() if heading.startswith(prefix)]
    return cells


def _nb7_definition(name: str):
    """A top-level function or assignment of notebook 7's code, by name, as an AST node."""
    for cell in nbformat.read(NB7, as_version=4).cells:
        if cell.cell_type != "code" or "colab-setup" in cell.metadata.get("tags", []):
            continue  # the Colab cell holds a %pip line, not Python
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return node
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return node
    raise AssertionError(f"notebook 7 defines no {name}")


def _nb7_function(name: str):
    namespace = {"math": math}
    exec(compile(ast.Module(body=[_nb7_definition(name)], type_ignores=[]), str(NB7), "exec"), namespace)
    return namespace[name]


def test_nb7_story_sections_measure_show_and_print_their_verdicts():
    for prefix, call in STORY_SECTIONS.items():
        cells = _story(prefix)
        code = [c for c in cells if c.cell_type == "code"]
        measuring = [c for c in code if call in c.source]
        assert measuring, f"section {prefix.strip()} never calls {call}"
        for cell in measuring:  # trained models: the output differs between smoke and full mode
            assert cell.source.startswith("# NBVAL_IGNORE_OUTPUT"), f"section {prefix.strip()}: mark {call}"
            assert "print(" in cell.source
        figures = [c for c in code if "plt.show()" in c.source]
        assert figures, f"section {prefix.strip()} has no figure"
        for cell in figures:
            assert cell.metadata.get("mystnb", {}).get("image", {}).get("alt"), f"{prefix.strip()}: alt text"


def test_nb7_prose_around_the_measurements_types_no_measured_number():
    """The verdicts are printed by the cells; the 'What to notice' prose must not assert a result."""
    measured = re.compile(r"\d+\.\d+|\d+\s*%")
    for prefix in STORY_SECTIONS:
        for cell in _story(prefix):
            if cell.cell_type == "markdown" and "What to notice" in cell.source:
                assert not measured.search(cell.source), f"section {prefix.strip()}: {measured.search(cell.source)}"


def test_nb7_open_exercises_cover_the_new_sections():
    (cells,) = [cells for heading, cells in _nb7_sections().items() if heading == "## Exercises"]
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    for call in ("latent_space_report", "overfitting_experiment", "posterior_spread", "probes.latent_codes"):
        assert call in text, call
    assert text.count("(explore)") >= 5 and text.count("<details>") >= 5


def test_nb7_verdict_rules():
    winner, compare = _nb7_function("winner"), _nb7_function("compare")
    assert winner(0.5, 0.3, "low") == "VAE" and winner(0.3, 0.5, "low") == "autoencoder"
    assert winner(0.6, 0.9, "high") == "VAE" and winner(0.9, 0.6, "high") == "autoencoder"
    assert winner(3.0, 1.2, "one") == "VAE" and winner(0.9, 1.5, "one") == "autoencoder"
    assert winner(0.5, 2.0, "one") == "tie" and winner(0.4, 0.4, "low") == "tie"
    assert compare(3.0, 1.0) == "larger" and compare(-3.0, 1.0) == "smaller"
    assert compare(1.9, 1.0) == compare(-2.0, 1.0) == "not measurably different"


@needs_mnist
def test_nb7_table_rows_are_exactly_the_reports_numbers():
    from vae_course.data import load_data

    rows = ast.literal_eval(_nb7_definition("ROWS").value)
    data = load_data("mnist", limit_train=300, limit_test=100)
    torch.manual_seed(0)
    for model in (Autoencoder(latent_dim=2), VAE(latent_dim=2)):
        report = latent_metrics.latent_space_report(model.eval(), data.train_x, data.train_y, data.test_x)
        assert [key for key, _, _ in rows] == list(report)
    assert {better for _, _, better in rows} <= {"low", "high", "one"}


def test_nb7_autoencoder_is_notebook_1s():
    """`pretrained("ae-2d")` must train exactly notebook 1's autoencoder (its full-mode settings)."""
    from dataclasses import asdict

    from vae_course.pretrained import PRETRAINED
    from vae_course.train import TrainConfig

    if "ae-2d" not in PRETRAINED:
        pytest.skip("vae_course.pretrained has no 'ae-2d' entry yet (notebook 7 needs it)")
    nb1 = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / "01_autoencoder.ipynb", as_version=4).cells)
    epochs = int(re.search(r"EPOCHS = 1 if SMOKE else (\d+)", nb1).group(1))
    call = ast.parse(re.search(r"TrainConfig\([^)]*\)", nb1).group(0)).body[0].value
    kwargs = {kw.arg: epochs if isinstance(kw.value, ast.Name) and kw.value.id == "EPOCHS"
              else ast.literal_eval(kw.value) for kw in call.keywords}
    assert kwargs["model"] == "ae" and kwargs["latent_dim"] == 2
    assert asdict(TrainConfig(**PRETRAINED["ae-2d"])) == asdict(TrainConfig(**kwargs))


# --------------------------------------------------------- the long-run result
def test_committed_long_run_result_is_complete():
    from vae_course.results import load_result
    result = load_result("conv_vae_long")  # committed with the package: never skipped
    for key in ("command", "commit", "device", "torch", "date", "epochs", "train_seconds", "model",
                "model_config", "binarize", "n_test", "test_elbo", "iwae_nll", "iwae_nll_stderr", "iw_samples"):
        assert key in result, key
    assert result["binarize"] == "dynamic" and result["model"] == "conv-vae"
    assert result["iw_samples"] == 5000
    # The importance-weighted estimate is a tighter bound than the ELBO.
    assert result["iwae_nll"] <= -result["test_elbo"] + 3 * result["iwae_nll_stderr"]


# ------------------------------------------------------------------ notebook 6
NB6 = ROOT / "notebooks" / "06_gpu_vae.ipynb"


def _nb6():
    import nbformat

    return nbformat.read(NB6, as_version=4)


def test_notebook6_asks_colab_for_a_t4_gpu():
    meta = _nb6().metadata
    assert meta.get("accelerator") == "GPU"
    assert meta.get("colab", {}).get("gpuType") == "T4"


def test_notebook6_table_is_markdown_built_in_a_folded_cell():
    from vae_course.results import markdown_table

    cells = [c for c in _nb6().cells if c.cell_type == "code" and "display(Markdown(" in c.source]
    assert len(cells) == 1, "notebook 6 should build exactly one Markdown table"
    cell = cells[0]
    assert "hide-input" in cell.metadata.get("tags", []), "the table-building code must be folded (tag hide-input)"
    assert "markdown_table(" in cell.source, "the table comes from the package's one table builder"
    lines = markdown_table(["a", "b", "c"], [[1, "x", 2.5], ["p", "q", "r"]]).splitlines()
    assert lines[0] == "| a | b | c |"
    assert re.fullmatch(r"\|(---\|){3}", lines[1])
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") == 2 for line in lines[2:])
    assert len(lines) == 4
    with pytest.raises(ValueError, match="rows"):
        markdown_table(["a", "b"], [[1]])


def test_notebook6_measures_the_shipped_model_and_labels_its_live_run():
    code = [c.source for c in _nb6().cells if c.cell_type == "code"]
    first = lambda text: next(i for i, src in enumerate(code) if text in src)
    assert "A short live run:" in code[first("Trainer(config")]
    shipped = first('pretrained("conv-vae-long")')
    assert first("iwae_nll(conv, iw_x") == shipped, "the live estimate must use the shipped model"
    assert first('long_run = load_result("conv_vae_long")') > shipped  # compared after the live estimate
    assert first("conv.sample(") > shipped and "conv_live.sample(" not in "\n".join(code)


def test_long_run_record_says_no_decision_looked_at_the_test_set():
    candidates = [ROOT / "vae_course" / "results" / "conv_vae_long.json", ROOT / "results" / "conv_vae_long.json"]
    path = next((p for p in candidates if p.exists()), None)
    assert path is not None, "the long run's results JSON is not committed"
    result = json.loads(path.read_text())
    assert "decisions" in result, f"{path.name} has no decision record"
    assert result["decided_on_test"] is False, f"{path.name}: a decision of the long run looked at the test set"


# ------------------------------------------- notebook 6 tells the truth about where and how (issues 19, 21, 22)
def _nb6_markdown() -> str:
    return "\n".join(c.source for c in _nb6().cells if c.cell_type == "markdown")


def _shown_commands(text: str) -> list[list[str]]:
    """Every command line of the fenced ``bash`` blocks in TEXT, continuation lines joined, comments and
    output redirections dropped, as lists of words."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0])
            if ">" in words:
                words = words[: words.index(">")]
            if words:
                commands.append(words)
    return commands


def test_every_command_notebook6_shows_runs_with_the_installed_package():
    from vae_course.cli import build_parser

    commands = _shown_commands(_nb6_markdown())
    assert commands, "notebook 6 shows the long run's commands"
    for words in commands:
        assert "scripts/" not in " ".join(words), f"a repository script shown as a learner's command: {words}"
        if words[0] == "torchrun":
            words = words[words.index("-m") :]
        else:
            assert words[:1] == ["python"], words
            words = words[1:]
        assert words[:2] == ["-m", "vae_course"], f"not the installed package's command line: {words}"
        build_parser().parse_args(words[2:])  # an unknown flag or a bad value exits: the test fails


def test_notebook6_long_run_commands_agree_with_the_committed_record():
    from vae_course.results import load_result

    record = load_result("conv_vae_long")
    commands = [" ".join(words) for words in _shown_commands(_nb6_markdown())]
    train = [c for c in commands if c.startswith("python -m vae_course train --model")]
    assert train == [record["train_command"]], "notebook 6 shows another training command than its record"
    out = record["train_command"].split("--out ")[1].split()[0]
    (evaluate,) = [c.split() for c in commands if c.startswith("python -m vae_course evaluate")]
    option = lambda name: evaluate[evaluate.index(name) + 1] if name in evaluate else None  # noqa: E731
    assert option("--checkpoint") == f"{out}/checkpoint.pt"
    assert int(option("--iw-samples")) == record["iw_samples"]
    sample = option("--sample-test")
    assert (int(sample) if sample else 10_000) == record["n_test"], "the evaluation's test images differ from the record's"
    assert any(c.startswith(f"python -m vae_course train --out {out} --resume") for c in commands)


def test_notebook6_names_its_device_and_claims_no_gpu_training():
    cells = _nb6().cells
    title = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("# 6."))
    assert "<!-- num: nb:06_gpu_vae.device -->" in title and "<!-- num: conv_vae_long.device -->" in title
    assert "trained on the GPU" not in title.splitlines()[0]
    text = _nb6_markdown()
    assert "trained for\nhours" not in text and "run of hours" not in text and "costs nothing" not in text
    device = _nb6().metadata["vae_course"]["device"]
    if not device.startswith("cuda"):  # until a GPU run is committed, no estimate for a Colab GPU
        assert "not measured on a GPU yet" in text


def test_notebook6_keeps_its_checkpoints_where_colab_cannot_erase_them():
    code = [c.source for c in _nb6().cells if c.cell_type == "code"]
    drive = [i for i, src in enumerate(code) if "RUN_DIR = checkpoint_folder(" in src]
    trainer = [i for i, src in enumerate(code) if "Trainer(config, out_dir=RUN_DIR" in src]
    assert len(drive) == 1 and trainer and drive[0] < trainer[0]
    assert not any("RUN_DIR = Path(" in src for src in code), "the run folder must come from checkpoint_folder"


def test_notebook6_compares_the_two_models_image_by_image_with_a_standard_error():
    (cell,) = [c for c in _nb6().cells if c.cell_type == "code" and 'mlp_iw = iwae_nll(' in c.source]
    assert 'mlp_iw["per_example"] - conv_iw["per_example"]' in cell.source
    assert "is better by" not in cell.source or "two standard errors" in cell.source


def test_iwae_per_example_estimates_are_what_the_mean_and_its_error_summarise():
    from vae_course.evaluate import iwae_nll

    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden_dim=16).eval()
    x = torch.bernoulli(torch.full((7, 1, 28, 28), 0.2), generator=torch.Generator().manual_seed(0))
    result = iwae_nll(model, x, k=16, progress=False)
    per = result["per_example"].double()
    assert per.shape == (7,)
    assert math.isclose(per.mean().item(), result["nll"], rel_tol=1e-9)
    assert math.isclose(per.std().item() / math.sqrt(7), result["nll_stderr"], rel_tol=1e-9)


# ------------------------------------------- notebook 7: the −ELBO alarm, and progress
def test_nb7_says_where_the_elbo_alarm_fails():
    (cell,) = [c for c in _story("## 9. ") if c.cell_type == "code" and "uncertainty_table(" in c.source]
    assert "-ELBO as an alarm" in cell.source and "elbo_fell" in cell.source
    notice = "\n".join(c.source for c in _story("## 9. ") if c.cell_type == "markdown" and "What to notice" in c.source)
    assert "fell" in notice and "notebook 9" in notice
    assert "the better alarm" not in notice


def test_the_overfitting_experiment_shows_progress_without_changing_its_numbers(capsys):
    from vae_course import generalization

    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.rand(24, 1, 28, 28, generator=g), torch.rand(24, 1, 28, 28, generator=g)
    kwargs = dict(n_train=16, epochs=2, eval_every=1, n_eval=8, variants=("vae", "ae"))
    silent = generalization.overfitting_experiment(train_x, test_x, **kwargs)
    shown = generalization.overfitting_experiment(train_x, test_x, show_progress=True, **kwargs)
    assert shown == silent
    assert "4/4" in capsys.readouterr().err  # one bar, one step per epoch of each variant
