"""Precompute the data of the web book's kernel-free explorers (book/_ext/explorers.py).

The book's explorers run in the reader's browser with no Python behind them, so
everything they show is computed here once and committed small, under
``book/_ext/static/explorers/``:

* ``<model>.png`` for the two shipped 2-D models of the course (notebook 1's plain
  autoencoder ``pretrained("ae-2d")`` and notebook 7's VAE ``pretrained("vae-2d")``):
  a sprite sheet of ``n × n`` decoded digits (28 × 28 pixels each, grey levels),
  the decoder's output at the centre of each cell of a grid over the latent
  plane. It is the image ``vae_course.plots.latent_grid`` draws, taken from its
  figure, so the web page and the notebooks use one definition of the grid
  (top row = largest ``z2``);
* ``<model>.js``: the grid's box, the codes of the first test digits (posterior
  means for the VAE) and their labels, and how they were made;
* ``vae-2d-training.js``: a short deterministic training of the same 2-D VAE
  recipe on a subset of MNIST (one CPU thread), with the codes of the first
  1,000 test digits after every epoch (epoch 0: the untrained network) and the
  test loss per epoch, for the epoch-by-epoch animation.

The data files are JavaScript (``window.courseExplorerData[...] = {...}``) rather
than JSON so that a built book opened from disk (``file://``, where ``fetch`` is
refused) still runs its explorers.

Run from the repository root (about a minute on one CPU thread; MNIST from the
course's data cache, e.g. ``VAE_COURSE_DATA=/path/to/data``)::

    OMP_NUM_THREADS=1 python scripts/make_explorer_data.py          # writes the files
    OMP_NUM_THREADS=1 python scripts/make_explorer_data.py --check  # exit 1 if they differ

Re-run it when the shipped weights of ``ae-2d`` or ``vae-2d`` change.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the figure is only read back
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae_course import plots  # noqa: E402
from vae_course.data import load_data  # noqa: E402
from vae_course.pretrained import PRETRAINED, pretrained, pretrained_config  # noqa: E402
from vae_course.train import Trainer  # noqa: E402
from vae_course.version import __version__  # noqa: E402

OUT = ROOT / "book" / "_ext" / "static" / "explorers"
GRID_N = 30            # decoded digits per side of the sprite sheet
N_CODES = 2000         # test digits drawn as dots in the latent-space explorers
N_TRAIN_CODES = 1000   # test digits followed through the training animation
TRAIN_LIMIT = 10_000   # training images of the animation's short run (the recipe's first 10,000)
VAE_EXTENT = 4.0       # the VAE explorer shows [-4, 4]^2: the prior's mass and a margin around it
DECIMALS = 2           # codes are stored rounded: 1/100 of a latent unit is below a pixel of the plane
TRAIN_SECONDS = re.compile(rb'"train_seconds":[0-9.]+,')  # a timing: not compared by --check


def _rounded(values: torch.Tensor) -> list[float]:
    """A tensor's values as one flat list of floats rounded to DECIMALS (compact JSON)."""
    return [round(float(v), DECIMALS) for v in values.reshape(-1).tolist()]


def sprite_png(model: torch.nn.Module, z_min: tuple[float, float], z_max: tuple[float, float], n: int) -> bytes:
    """The ``(n*28, n*28)`` grid that ``plots.latent_grid`` decodes over the box, as grey-level PNG bytes."""
    fig, ax = plt.subplots()
    plots.latent_grid(model, z_min, z_max, n=n, ax=ax)
    grid = np.asarray(ax.images[0].get_array(), dtype=np.float32)  # (n*28, n*28), values in [0, 1]
    plt.close(fig)
    if grid.shape != (n * 28, n * 28):
        raise RuntimeError(f"plots.latent_grid drew a {grid.shape} image, expected {(n * 28, n * 28)}")
    buffer = io.BytesIO()
    Image.fromarray((np.clip(grid, 0, 1) * 255).round().astype(np.uint8), mode="L").save(
        buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def codes_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` codes of images ``x`` ``(n, 1, 28, 28)``: the posterior mean for a VAE, z for an autoencoder."""
    with torch.no_grad():
        out = model.encode(x)
    return out[0] if isinstance(out, tuple) else out


def latent_explorer_data(name: str, data) -> tuple[dict[str, Any], bytes]:
    """The data file and sprite sheet of the latent-space explorer of pretrained model ``name``."""
    model = pretrained(name, verbose=False)
    test_x, test_y = data.test_x[:N_CODES], data.test_y[:N_CODES]
    codes = codes_of(model, test_x)
    with torch.no_grad():
        variational = isinstance(model.encode(test_x[:1]), tuple)  # a VAE's encoder returns (mu, logvar)
    if not variational:
        # Notebook 1's box: the smallest rectangle holding every training code.
        z_train = torch.cat([codes_of(model, chunk) for chunk in data.train_x.split(10_000)])
        lo, hi = z_train.min(0).values, z_train.max(0).values
        box = ([round(float(v), DECIMALS) for v in lo], [round(float(v), DECIMALS) for v in hi])
        box_text = "the bounding box of the codes of all 60,000 training images (as in notebook 1)"
    else:
        box = ([-VAE_EXTENT, -VAE_EXTENT], [VAE_EXTENT, VAE_EXTENT])
        box_text = f"[-{VAE_EXTENT:g}, {VAE_EXTENT:g}]² around the prior's mean"
    png = sprite_png(model, tuple(box[0]), tuple(box[1]), GRID_N)
    record = {
        "model": name,
        "settings": PRETRAINED[name],
        "z_min": box[0], "z_max": box[1], "box": box_text,
        "grid": GRID_N, "tile": 28, "sprite": f"{name}.png",
        "sprite_order": "row-major, top row = largest z2, each tile decoded at its cell's centre "
                        "(vae_course.plots.latent_grid)",
        "codes": _rounded(codes), "labels": [int(v) for v in test_y],
        "codes_of": (f"the first {len(test_y):,} MNIST test images: "
                     + ("their posterior means μ(x)" if variational else "their codes z = encoder(x)")),
    }
    return record, png


def training_animation(data) -> dict[str, Any]:
    """Train the vae-2d recipe on a subset, recording the test codes after every epoch."""
    config = pretrained_config("vae-2d", limit_train=TRAIN_LIMIT, limit_test=N_TRAIN_CODES)
    subset = load_data("mnist", limit_train=TRAIN_LIMIT, limit_test=N_TRAIN_CODES)
    trainer = Trainer(config=config, data=subset, log=None, progress=False)
    frames = [{"epoch": 0, "codes": _rounded(codes_of(trainer.model.eval(), subset.test_x))}]
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        record = trainer.fit(epochs=epoch)[-1]
        frames.append({"epoch": epoch, "test_loss": round(record["test_loss"], 2),
                       "test_recon": round(record["test_recon"], 2), "test_kl": round(record["test_kl"], 2),
                       "codes": _rounded(codes_of(trainer.model.eval(), subset.test_x))})
    seconds = time.perf_counter() - start
    every = torch.tensor([v for f in frames for v in f["codes"]]).abs().max().item()
    return {
        "model": "vae-2d recipe, short run",
        "config": asdict(config),
        "what_ran": (f"vae_course.train.Trainer(pretrained_config('vae-2d', limit_train={TRAIN_LIMIT}, "
                     f"limit_test={N_TRAIN_CODES})).fit(epochs=e) for e = 1..{config.epochs}, on one CPU "
                     f"thread: the recipe of pretrained('vae-2d') on the first {TRAIN_LIMIT:,} training images "
                     "(the shipped model saw all 60,000)"),
        "train_seconds": round(seconds, 1), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "extent": float(np.ceil(every)),
        "labels": [int(v) for v in subset.test_y],
        "codes_of": f"the first {N_TRAIN_CODES:,} MNIST test images: posterior means μ(x) after each epoch",
        "frames": frames,
    }


def as_script(key: str, record: dict[str, Any]) -> str:
    """A data file the book loads with a <script> tag (works from file:// as well as over HTTP)."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return ("// Generated by scripts/make_explorer_data.py: do not edit by hand.\n"
            f"(window.courseExplorerData = window.courseExplorerData || {{}})[{json.dumps(key)}] = {body};\n")


def build() -> dict[str, bytes]:
    """Every explorer file: name -> content."""
    torch.set_num_threads(1)  # deterministic, and polite on a shared machine
    files: dict[str, bytes] = {}
    data = load_data("mnist")
    for name in ("ae-2d", "vae-2d"):
        record, png = latent_explorer_data(name, data)
        record["made_by"] = f"scripts/make_explorer_data.py, vae_course {__version__}, torch {torch.__version__}"
        files[f"{name}.png"] = png
        files[f"{name}.js"] = as_script(name, record).encode()
    animation = training_animation(data)
    animation["made_by"] = f"scripts/make_explorer_data.py, vae_course {__version__}"
    files["vae-2d-training.js"] = as_script("vae-2d-training", animation).encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed files instead of writing (exit 1 if any differs); "
                             "the training time recorded in the animation file is not compared")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        differ = [name for name, content in files.items() if _differs(OUT / name, content)]
        for name in differ:
            print(f"{OUT / name} differs from a fresh run: run scripts/make_explorer_data.py", file=sys.stderr)
        return 1 if differ else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (OUT / name).write_bytes(content)
        print(f"wrote {(OUT / name).relative_to(ROOT)} ({len(content) / 1024:.0f} KB)")
    return 0


def _differs(path: Path, content: bytes) -> bool:
    """True when the committed file differs from ``content`` (ignoring the recorded training seconds)."""
    if not path.is_file():
        return True
    old, new = path.read_bytes(), content
    if path.suffix == ".js":
        old, new = TRAIN_SECONDS.sub(b"", old), TRAIN_SECONDS.sub(b"", new)
    return old != new


if __name__ == "__main__":
    raise SystemExit(main())
