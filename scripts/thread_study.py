"""Why two torch threads collapse when another process shares the cores, measured.

A maintainers' study (not part of the package): the package's trainer (the
seed's MLP VAE, one fresh process per run, ``python -m vae_course.bench_runs
--side package``) trains for ``--epochs`` epochs in every combination of

* torch threads: 1 and the core count;
* a neighbour: none, or one other process keeping a core busy (a pure-Python
  loop, as a second notebook or a compile job would);
* OpenMP's wait policy: libgomp's default (a thread that reaches the end of a
  parallel region spins for a while before sleeping) and ``OMP_WAIT_POLICY=PASSIVE``
  (it sleeps at once).

Each run's later epochs (the first is the warm-up) give wall-clock seconds,
CPU seconds (all of the run's threads) and the run's involuntary context
switches (``getrusage``: how often the kernel took a core away from it). The
runs alternate, ``--repeats`` times, and the medians go to ``--json``.

Usage (on a quiet machine, nothing else running)::

    python scripts/thread_study.py --json vae_course/results/thread_study.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae_course.bench_runs import RECORD_MARK  # noqa: E402
from vae_course.provenance import busy_cores, collect, load_average  # noqa: E402

NEIGHBOUR = "while True: pass"  # one core kept busy, as any other CPU-bound process would


def one_run(threads: int, neighbour: bool, passive: bool, epochs: int, limit_train: int) -> dict:
    """One fresh process of the package's trainer; its epochs' seconds and its context switches."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy = subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) if neighbour else None
    try:
        if busy:
            time.sleep(0.5)  # the neighbour is running before the run starts
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = subprocess.run(
            [sys.executable, "-m", "vae_course.bench_runs", "--side", "package", "--epochs", str(epochs),
             "--threads", str(threads), "--limit-train", str(limit_train), "--limit-test", "1000"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if busy:
            busy.kill()
            busy.wait()
    line = next(ln for ln in child.stdout.splitlines() if ln.startswith(RECORD_MARK))
    record = json.loads(line[len(RECORD_MARK):])
    return {"seconds": record["seconds"][1:], "cpu_seconds": (record["cpu_seconds"] or [None])[1:],
            "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
            "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw, "threads": record["threads"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is the warm-up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit-train", type=int, default=20000, help="training images per epoch")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    configs = list(itertools.product(sorted({1, cores}), (False, True), (False, True)))
    start = {"loadavg": load_average(), "busy_cores": busy_cores()}
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        for threads, neighbour, passive in configs:
            r = one_run(threads, neighbour, passive, args.epochs, args.limit_train)
            runs[(threads, neighbour, passive)].append(r)
            print(f"repeat {repeat + 1}: threads {threads}, neighbour {'yes' if neighbour else 'no '}, "
                  f"wait {'PASSIVE' if passive else 'default'}: "
                  f"{statistics.median(r['seconds']):.2f} s/epoch, cpu {statistics.median(r['cpu_seconds']):.2f} s, "
                  f"{r['involuntary_switches']} involuntary switches", flush=True)
    rows = []
    for (threads, neighbour, passive), rs in runs.items():
        seconds = [s for r in rs for s in r["seconds"]]
        cpu = [s for r in rs for s in r["cpu_seconds"]]
        rows.append({"threads": threads, "neighbour": neighbour, "wait_policy": "PASSIVE" if passive else "default",
                     "seconds_per_epoch": statistics.median(seconds), "cpu_seconds_per_epoch": statistics.median(cpu),
                     "involuntary_switches_per_run": statistics.median(r["involuntary_switches"] for r in rs),
                     "runs": rs})
    by = {(r["threads"], r["neighbour"], r["wait_policy"]): r["seconds_per_epoch"] for r in rows}
    slowdown = {f"{t} thread{'s' if t > 1 else ''}, {p}": round(by[(t, True, p)] / by[(t, False, p)], 2)
                for t in sorted({1, cores}) for p in ("default", "PASSIVE")}
    result = {"kind": "thread_study", "command": "python scripts/thread_study.py " + " ".join(sys.argv[1:]),
              **collect("cpu"), "start": start, "end": {"loadavg": load_average()},
              "settings": {"model": "vae (784-400-20 MLP)", "images_per_epoch": args.limit_train,
                           "epochs_per_run": args.epochs, "warmup_epochs_dropped": 1, "repeats": args.repeats,
                           "neighbour": f"{sys.executable.rsplit('/', 1)[-1]} -c {NEIGHBOUR!r}"},
              "rows": rows, "slowdown_with_neighbour": slowdown}
    print(json.dumps(slowdown, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
