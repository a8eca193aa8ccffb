"""Draw the course map on the welcome page: ``python book/images/make_course_map.py``.

Writes ``book/images/course_map.svg`` (commit it). The path through the course
is a snake of three rows: the ideas (1-4), the model (5-6), using it (7-9).
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

STEPS = [  # (number, title, one idea)
    (1, "Autoencoder", "compress, reconstruct;\nwhy it cannot generate"),
    (2, "Latent variables\n& the ELBO", "a lower bound on log p(x),\nderived two ways"),
    (3, "Reparameterization", "z = μ + σ·ε: gradients\nthrough a sample"),
    (4, "KL divergence", "the closed form, derived\nand checked three ways"),
    (5, "The full VAE", "the seed's model completed,\ntrained and sampled"),
    (6, "VAE on a GPU", "a conv VAE; likelihoods\nagainst the papers"),
    (7, "Latent space", "a 2-D map of digits,\nexplored interactively"),
    (8, "Beyond vanilla", "β-VAE, posterior collapse,\nthe conditional VAE"),
    (9, "Applications", "generation, augmentation,\nanomalies, compression"),
]
ROWS = [("The ideas", [0, 1, 2, 3]), ("The model", [4, 5]), ("Using it", [6, 7, 8])]
COLORS = ["#dbe9f6", "#fde7c8", "#d9f0d3"]
EDGES = ["#2f6fad", "#c4781a", "#3b8a3e"]


def main(out: Path) -> None:
    plt.rcParams.update({"font.family": "DejaVu Sans", "svg.fonttype": "path", "svg.hashsalt": "vae-course"})
    fig, ax = plt.subplots(figsize=(10, 5.6))
    ax.set_xlim(0, 10.4)
    ax.set_ylim(-0.5, 5.6)
    ax.axis("off")
    w, h, gap, left = 2.2, 1.3, 0.25, 0.5
    cols = {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 2, 6: 1, 7: 2, 8: 3}  # the snake's column of each step
    centers = {}
    for r, (label, idx) in enumerate(ROWS):
        y = 4.45 - r * 1.75
        xs = [left + w / 2 + cols[i] * (w + gap) for i in idx]
        ax.text(0.05, y, label, rotation=90, ha="left", va="center", fontsize=11, color=EDGES[r], weight="bold")
        for x, i in zip(xs, idx):
            n, title, idea = STEPS[i]
            centers[i] = (x, y)
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                        fc=COLORS[r], ec=EDGES[r], lw=1.6))
            # the notebook's number in a round badge on the box's top-left corner
            ax.text(x - w / 2 + 0.05, y + h / 2 - 0.05, str(n), ha="center", va="center", fontsize=11,
                    weight="bold", color="white", bbox=dict(boxstyle="circle,pad=0.25", fc=EDGES[r], ec="none"))
            ax.text(x, y + 0.22, title, ha="center", va="center", fontsize=10.5, weight="bold", color="#222")
            ax.text(x, y - 0.33, idea, ha="center", va="center", fontsize=8, color="#333", linespacing=1.15)
    for i in range(len(STEPS) - 1):
        (x0, y0), (x1, y1) = centers[i], centers[i + 1]
        if abs(y0 - y1) < 1e-6:  # same row
            s = 1 if x1 > x0 else -1
            start, end = (x0 + s * w / 2, y0), (x1 - s * w / 2, y1)
            style = "arc3"
        elif abs(x0 - x1) < 1e-6:  # straight down
            start, end = (x0, y0 - h / 2), (x1, y1 + h / 2)
            style = "arc3"
        else:  # leave by the left side, turn down into the next row
            start, end = (x0 - w / 2, y0), (x1, y1 + h / 2)
            style = "angle,angleA=180,angleB=90,rad=6"
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, lw=1.6, color="#555",
                                     connectionstyle=style))
    ax.text(5.4, -0.2, "Each notebook: question → idea → derivation → code → figure → exercises with instant checks",
            ha="center", va="center", fontsize=9.5, style="italic", color="#444")
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(Path(__file__).with_name("course_map.svg"))
