"""Ship a trained model's weights with the package: fp16 file + manifest entry.

    python scripts/ship_weights.py conv-vae-long runs/conv_long/checkpoint.pt \
        --train-command "python -m vae_course train --model conv-vae ..."

It writes ``vae_course/weights/NAME.fp16.pth`` and the entry of NAME in
``vae_course/weights/manifest.json`` (SHA-256, dtype, model and training
configuration, the training command), then checks that the model loaded back
from the shipped file has the same test ELBO as the checkpoint's float32 model
to 2 decimals (on the checkpoint's own dataset and binarization; ``--limit-test``
for a quicker check). If it does not, the file and entry are removed again and
the script exits with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae_course.checkpoint import load_checkpoint, model_from_checkpoint, train_config_of  # noqa: E402
from vae_course.data import load_data  # noqa: E402
from vae_course.evaluate import evaluate_elbo  # noqa: E402
from vae_course.weights import (  # noqa: E402
    load_shipped, read_manifest, weights_dir, write_manifest_entry, write_shipped)

TOLERANCE = 0.005  # "unchanged to 2 decimals": the two ELBOs differ by less than half a unit in the 2nd


def test_elbo(model, state: dict, limit_test: int | None) -> float:
    config = train_config_of(state)
    data = load_data(config["dataset"], binarize=config["binarize"], limit_train=1, limit_test=limit_test)
    y = data.test_y if getattr(model, "conditional", False) else None
    return evaluate_elbo(model, data.test_x, y)["elbo"]


def ship(name: str, checkpoint: Path, train_command: str, limit_test: int | None = None,
         directory: Path | None = None) -> dict:
    """Ship one checkpoint; return its manifest entry (raises ``SystemExit`` if the ELBO moved)."""
    directory = Path(directory or weights_dir())
    state = load_checkpoint(checkpoint)
    reference = model_from_checkpoint(state).eval()
    previous = read_manifest(directory).get(name)
    entry = write_shipped(name, state, train_command, directory=directory)
    shipped = model_from_checkpoint(state).eval()
    shipped.load_state_dict(load_shipped(name, directory))
    fp32, fp16 = test_elbo(reference, state, limit_test), test_elbo(shipped, state, limit_test)
    if abs(fp32 - fp16) >= TOLERANCE:
        write_manifest_entry(name, None, directory)
        (directory / entry["file"]).unlink(missing_ok=True)
        if previous is not None:  # its file was replaced: the old entry no longer fits it
            print(f"ship_weights: the previous shipped {name} is removed too; ship a good checkpoint again")
        raise SystemExit(f"ship_weights: the fp16 copy of {name} changes the test ELBO "
                         f"({fp32:.4f} -> {fp16:.4f} nats); not shipped")
    entry["test_elbo"] = {"fp32": round(fp32, 4), "shipped": round(fp16, 4), "limit_test": limit_test}
    write_manifest_entry(name, entry, directory)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the name pretrained() knows the model by (e.g. conv-vae-long)")
    parser.add_argument("checkpoint", type=Path, help="the training run's checkpoint.pt")
    parser.add_argument("--train-command", required=True, help="the command that trained it (recorded)")
    parser.add_argument("--limit-test", type=int, default=None, help="check the ELBO on the first N test images")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the weights folder (default: vae_course/weights, or $VAE_COURSE_WEIGHTS)")
    args = parser.parse_args(argv)
    entry = ship(args.name, args.checkpoint, args.train_command, args.limit_test, args.dir)
    size = (Path(args.dir or weights_dir()) / entry["file"]).stat().st_size
    print(f"shipped {args.name}: {entry['file']} ({size / 1e6:.1f} MB, sha256 {entry['sha256'][:12]}…); "
          f"test ELBO {entry['test_elbo']['fp32']:.2f} (fp32) = {entry['test_elbo']['shipped']:.2f} (shipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
