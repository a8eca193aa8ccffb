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
    assert first('load_result("conv_vae_long")') > shipped
    assert first("conv.sample(") > shipped and "conv_live.sample(" not in "\n".join(code)


def test_long_run_record_says_no_decision_looked_at_the_test_set():
    candidates = [ROOT / "vae_course" / "results" / "conv_vae_long.json", ROOT / "results" / "conv_vae_long.json"]
    path = next((p for p in candidates if p.exists()), None)
    assert path is not None, "the long run's results JSON is not committed"
    result = json.loads(path.read_text())
    assert "decisions" in result, f"{path.name} has no decision record"
    assert result["decided_on_test"] is False, f"{path.name}: a decision of the long run looked at the test set"
