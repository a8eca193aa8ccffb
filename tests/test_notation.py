"""One notation on every page (issue 13, item 4).

The notation table in ``book/prerequisites.md`` defines each symbol once:
N = number of training images, L = number of Monte Carlo samples per data
point, K = number of importance samples, J = latent dimension, D = pixels per
image, B = minibatch size. This test scans the prose of every notebook (its
markdown cells, outside code) for the symbols those meanings replaced: a
latent dimension written d or u, and a sample count written N or M.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NOTATION_PAGE = ROOT / "book" / "prerequisites.md"

# (pattern, what it means, what to write instead). Each pattern needs context, so that the same
# letter in its defined meaning (N images, D pixels, d as a function's argument) is not flagged.
RETIRED: list[tuple[str, str, str]] = [
    (r"\\sqrt\{?\s*d\b|\\sqrt\{d/2\}|I_d\b|\\chi\^2_d|\\mathbb\{R\}\^d\b", "latent dimension written d", "J"),
    (r"\$d\$[- ](?:latent |)dimension|in \$d\$ dimensions|\(m, d\)|\(N, d\)|sum over \$d\$",
     "latent dimension written d", "J"),
    (r"z_u\b|A_u\b|\\mathrm\{KL\}\}_u|dimension \$u\$|\$u\$ \*\*active|\{u=1\}", "latent index written u", "j"),
    (r"\$N\$[- ]samples?|\$N\$ samples|N\$-sample|\$N = [\d\s,\\]+\$ samples|number of samples \$?N\b",
     "sample count written N", "L (Monte Carlo) or K (importance samples)"),
    (r"z_1, \\dots, z_N|\\frac\{?1\}?\{?N\}?\s*\\sum_\{?n=1\}?\^\{?N\}?\s*\\log w|\\sqrt\{?v\s*/\s*N|1/\\sqrt\s*N\b",
     "sample count written N", "L"),
    (r"\$M\$ (?:Monte Carlo )?samples|\$M = \d", "sample count written M", "L"),
]


def prose(source: str) -> str:
    """The markdown text outside fenced code blocks and inline code spans."""
    text = re.sub(r"```.*?```", " ", source, flags=re.S)
    return re.sub(r"`[^`\n]*`", " ", text)


def retired_symbols(text: str) -> list[str]:
    """Every retired use of a symbol found in ``text``, as 'found …: write … instead'."""
    found = []
    for pattern, meaning, instead in RETIRED:
        for match in re.finditer(pattern, text):
            found.append(f"{match.group(0)!r} ({meaning}): write {instead} instead")
    return found


@pytest.mark.parametrize(
    "text",
    [
        r"If $z \sim \mathcal{N}(0, I_d)$ then $\lVert z\rVert \approx \sqrt{d}$",
        r"A latent dimension $u$ has collapsed when $q(z_u \mid x) = p(z_u)$",
        r"An $N$-sample average has standard deviation $\sqrt{v/N}$",
        r"with $N = 1000$ samples",
        r"samples $z_1, \dots, z_N \sim q$",
        r"In $d$ dimensions Gaussian samples live near a sphere",
        r"`mu` is `(N, d)`; return `(m,)`: the (m, d) matrix",
        r"draw $M = 2000$ points",
    ],
)
def test_the_scanner_finds_retired_symbols(text):
    assert retired_symbols(prose(text)), text


@pytest.mark.parametrize(
    "text",
    [
        r"$q(z) = \frac1N \sum_{n=1}^N q(z \mid x_n)$, at most $\log N$ nats for $N$ images",
        r"$x \in [0,1]^D$ with $D = 784$ pixels; $\frac D2 \log(2\pi\sigma^2)$",
        r"$L$ samples: $\hat{\mathcal L} = \frac1L \sum_{l=1}^L \log w_l$, error $\sqrt{v/L}$",
        r"If $z \sim \mathcal N(0, I_J)$ then $\lVert z \rVert \approx \sqrt{J}$",
        "```python\nd, n = 20, 10_000\n```\nand `my_conv_size(n, kernel, stride, padding)`",
    ],
)
def test_the_scanner_leaves_the_defined_meanings_alone(text):
    assert not retired_symbols(prose(text)), retired_symbols(prose(text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_prose_uses_the_course_notation(path):
    book = nbformat.read(path, as_version=4)
    problems = [f"cell {i}: {hit}" for i, cell in enumerate(book.cells) if cell.cell_type == "markdown"
                for hit in retired_symbols(prose(cell.source))]
    assert not problems, f"{path.name} (notation: book/prerequisites.md):\n" + "\n".join(problems)


def test_the_notation_page_defines_each_symbol_once():
    text = NOTATION_PAGE.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| $")]
    for symbol in ("$N$", "$L$", "$K$", "$J$", "$D$", "$B$"):
        defining = [row for row in rows if row.split("|")[1].strip().startswith(symbol)]
        assert len(defining) == 1, f"the notation table should define {symbol} in exactly one row, found {len(defining)}"
