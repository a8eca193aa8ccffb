"""The benchmark (tiny runs: it must work and write valid JSON; no time is ever
asserted), the canonical example's loss and the trainer's lean hot path."""
from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import pytest
import torch

from vae_course import bench, bench_runs
from vae_course.bench import PACKAGE, USUAL
from vae_course.cli import main
from vae_course.losses import bernoulli_nll, kl_divergence

# One epoch of 256 images, one repeat: the smallest real run (two child processes).
TINY = dict(epochs=1, repeats=1, threads=1, limit_train=256, limit_test=128)
BUSY_LOAD = 99.0  # cores "busy with other work", fed through load_probe


@pytest.fixture(scope="module")
def tiny_bench(mnist_small):
    said: list[str] = []
    result = bench.run_bench(**TINY, load_probe=lambda: BUSY_LOAD, log=said.append, child_timeout_s=300)
    return result, said


# ---------------------------------------------------------------- the benchmark
def test_bench_record_schema(tiny_bench):
    r, _ = tiny_bench
    for key in ("kind", "command", "commit", "dirty", "date", "torch_version", "device", "device_type", "threads",
                "cpu_model", "cpu_count", "loadavg_start", "loadavg_end", "busy", "busy_threshold_cores",
                "order", "settings", "setup_seconds", "methods", "ratio", "ratio_per_repeat", "ratio_min",
                "ratio_max", "cpu_ratio"):
        assert key in r, key
    assert r["kind"] == "bench" and r["threads"] == 1
    assert r["settings"]["batch_size"] == 128 and r["settings"]["lr"] == 1e-3 and r["settings"]["epochs"] == 1
    for side in (USUAL, PACKAGE):
        m = r["methods"][side]
        assert len(m["runs"]) == 1 and len(m["warmup_seconds"]) == 1
        assert m["steady_is_warmup"]  # 1 epoch: no steady state, the table says so
        assert m["seconds_min"] <= m["seconds_median"] <= m["seconds_max"]
        assert m["images_per_second"] > 0 and math.isfinite(m["test_loss_median"])
        run = m["runs"][0]
        assert run["side"] == side and run["images"] == 256 and run["threads"] == 1
        assert len(run["seconds"]) == len(run["test_loss"]) == 1
    assert len(r["ratio_per_repeat"]) == 1 and r["ratio_min"] <= r["ratio"] * (1 + 1e-12)
    assert json.loads(json.dumps(r)) == r  # JSON-ready, nothing lost
    table = bench.format_table(r)
    assert "speed-up" in table and "usual recipe" in table and "vae_course trainer" in table
    assert "warm-up epochs" in table


def test_each_run_has_its_own_process(tiny_bench):
    r, _ = tiny_bench
    pids = [r["methods"][side]["runs"][0]["pid"] for side in (USUAL, PACKAGE)]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert r["order"] == [[0, USUAL], [0, PACKAGE]]
    assert [r["methods"][side]["runs"][0]["position"] for side in (USUAL, PACKAGE)] == [0, 1]


def test_a_busy_machine_is_flagged(tiny_bench):
    r, said = tiny_bench
    assert r["busy"] is True
    for side in (USUAL, PACKAGE):
        run = r["methods"][side]["runs"][0]
        assert run["load_before"] == BUSY_LOAD and run["busy_before"] is True
    assert sum("warning" in line and "not a fair benchmark" in line for line in said) == 2
    assert "WARNING: the machine was busy" in bench.format_table(r)


def test_run_order_alternates():
    assert bench.run_order(3) == [(0, USUAL), (0, PACKAGE), (1, PACKAGE), (1, USUAL), (2, USUAL), (2, PACKAGE)]
    order = bench.run_order(4)
    assert sum(side == USUAL for _, side in order) == 4
    assert [side for _, side in order][::2].count(USUAL) == 2  # each side goes first in half the repeats


@pytest.mark.parametrize("load, threads, cores, busy", [
    (0.0, 2, 2, False), (0.5, 2, 2, False), (0.51, 2, 2, True),   # 2 cores, 2 threads: nothing else may run
    (0.51, 1, 2, True),                                            # 1 of 2 cores free is not enough margin
    (13.5, 2, 16, False), (13.6, 2, 16, True),                     # 16 cores: others must leave 2.5 idle
    (None, 2, 2, False),                                           # unknown load: not flagged
])
def test_busy_flag_logic(load, threads, cores, busy):
    assert bench.is_busy(load, threads, cores) is busy
    assert bench.busy_threshold(threads, cores) >= bench.BUSY_MARGIN


def test_check_writable(tmp_path):
    path = bench.check_writable(tmp_path / "new" / "bench.json")
    assert path.parent.is_dir() and not path.exists() and not list(path.parent.iterdir())  # probe removed
    with pytest.raises(ValueError, match="is a folder"):
        bench.check_writable(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write"):
        bench.check_writable(blocker / "bench.json")  # its "folder" is a file


def test_default_json_path():
    from vae_course.results import RESULTS_DIR
    assert bench.default_json_path("cpu") == RESULTS_DIR / "bench_cpu.json"
    assert bench.default_json_path("cuda") == RESULTS_DIR / "bench_gpu.json"


def test_bench_cli_checks_the_path_before_running(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", "--epochs", "1", "--repeats", "1", "--json", str(blocker / "b.json")]) == 1
    captured = capsys.readouterr()
    assert "cannot write" in captured.err and "repeat 1/1" not in captured.out  # no run started


def test_bench_cli_writes_json(tmp_path, mnist_small, capsys):
    out = tmp_path / "sub" / "bench.json"
    argv = ["bench", "--epochs", "1", "--repeats", "1", "--threads", "1", "--limit-train", "256",
            "--limit-test", "128", "--child-timeout", "300", "--json", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["command"] == ("python -m vae_course bench --epochs 1 --repeats 1 --threads 1 --limit-train 256 "
                                 f"--limit-test 128 --child-timeout 300 --json {out}")
    assert record["methods"]["package"]["label"] == "vae_course trainer"
    assert "speed-up" in capsys.readouterr().out


def test_bench_is_a_leaf():
    """bench and its runs never import the CLI (issue 14: cli -> bench, never back)."""
    for module in (bench, bench_runs):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not any(name.split(".")[-1] == "cli" for name in imported), (module.__name__, imported)


def test_gemm_floor_counts_the_steps_matrix_multiplies():
    s = bench_runs.BenchSettings(limit_train=300, batch_size=128)  # batches of 128, 128, 44
    floor = bench_runs.gemm_floor(s, epochs=1)
    assert floor["steps"] == 3 and floor["gemms_per_step"] == 14 and len(floor["seconds"]) == 1
    # per image: 2 FLOP per multiply-add; 3 GEMMs per layer but 2 for fc1 (no gradient for the data)
    per_image = 2 * (2 * 784 * 400 + 3 * (400 * 20 + 400 * 20 + 20 * 400 + 400 * 784))
    assert floor["gflop_per_epoch"] == pytest.approx(300 * per_image / 1e9)


@pytest.mark.parametrize("side", [USUAL, PACKAGE])
def test_profile_table(side, mnist_small):
    p = bench_runs.profile_side(side, bench_runs.BenchSettings(limit_train=256), steps=2)
    assert p["steps"] == 2 and p["wall_ms_per_step"] > 0 and 0 < p["gemm_share"] < 1
    ops = p["ops"]
    assert ops and all(a["self_cpu_ms"] >= b["self_cpu_ms"] for a, b in zip(ops, ops[1:]))  # sorted
    assert {"aten::addmm", "aten::mm"} & {op["name"] for op in ops}


def test_example_loss_equals_package_terms():
    """The canonical example's BCE-on-probabilities + KL equals the package's
    Bernoulli NLL on logits + closed-form KL (summed over the batch)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 1, 28, 28, generator=gen) * 3
    x = torch.rand(8, 1, 28, 28, generator=gen)
    mu, logvar = torch.randn(8, 20, generator=gen), torch.randn(8, 20, generator=gen)
    ours = (bernoulli_nll(logits, x) + kl_divergence(mu, logvar)).sum()
    theirs = bench_runs.example_loss(torch.sigmoid(logits).view(8, 784), x, mu, logvar)
    assert torch.allclose(ours, theirs, rtol=1e-4)


def test_example_vae_has_the_seed_layers():
    names = [n for n, _ in bench_runs.ExampleVAE().named_parameters()]
    assert names == [f"{layer}.{p}" for layer in ("fc1", "fc21", "fc22", "fc3", "fc4") for p in ("weight", "bias")]
