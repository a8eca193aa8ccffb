"""Interactive explorers built with ipywidgets.

Widgets need a live Python kernel (Jupyter, Colab): the rendered book cannot run
their callbacks, so each notebook also shows a static figure of what they do.
Each function returns the widget, so ``display(kl_explorer())`` works anywhere.
"""
from __future__ import annotations


def kl_densities_figure(mu: float = 1.0, logvar: float = -1.0, ax=None):
    """Draw ``q = N(mu, sigma^2)`` (``sigma^2 = exp(logvar)``) against the prior
    ``p = N(0, 1)`` on one axis, titled with ``KL(q || p)`` in nats.

    The static twin of :func:`kl_explorer` (the book cannot run widget callbacks).
    Returns the matplotlib figure.
    """
    import math

    import matplotlib.pyplot as plt
    import torch

    from .losses import kl_divergence

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
    else:
        fig = ax.figure
    sigma = math.exp(0.5 * logvar)
    kl = kl_divergence(torch.tensor([[float(mu)]]), torch.tensor([[float(logvar)]])).item()
    lo, hi = min(-4.0, mu - 4 * sigma), max(4.0, mu + 4 * sigma)
    z = torch.linspace(lo, hi, 400, dtype=torch.float64)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).exp()
    q = torch.distributions.Normal(float(mu), sigma).log_prob(z).exp()
    ax.fill_between(z, prior, color="#777777", alpha=0.3, label="prior p(z) = N(0, 1)")
    ax.plot(z, q, color="#CC6677", lw=2, label=f"q(z) = N({mu:.2f}, {sigma:.2f}²)")
    ax.set_xlabel("z")
    ax.set_ylabel("density")
    ax.set_title(f"KL(q ‖ p) = {kl:.3f} nats")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def kl_explorer(mu: float = 1.0, logvar: float = -1.0):
    """Sliders for ``mu`` and ``log sigma^2`` that redraw ``q = N(mu, sigma^2)`` against
    the prior ``N(0, 1)`` and show ``KL(q || p)`` in nats (notebook 4).

    Returns an ``ipywidgets.VBox`` (display it). For programmatic use it carries
    ``.mu_slider``, ``.logvar_slider``, ``.kl_label`` (an ``HTML`` widget whose
    value reads ``KL(q || p) = <value> nats``) and ``.plot`` (an ``Output``).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    from .losses import kl_divergence

    mu_slider = widgets.FloatSlider(value=mu, min=-3.0, max=3.0, step=0.05, description="μ",
                                    continuous_update=False)
    logvar_slider = widgets.FloatSlider(value=logvar, min=-4.0, max=2.0, step=0.05, description="log σ²",
                                        continuous_update=False)
    kl_label = widgets.HTML()
    plot = widgets.Output()

    def redraw(_change=None) -> None:
        m, lv = mu_slider.value, logvar_slider.value
        kl = kl_divergence(torch.tensor([[m]]), torch.tensor([[lv]])).item()
        kl_label.value = f"KL(q ‖ p) = {kl:.4f} nats"
        with plot:
            plot.clear_output(wait=True)
            fig = kl_densities_figure(m, lv)
            display(fig)
            plt.close(fig)

    mu_slider.observe(redraw, names="value")
    logvar_slider.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([mu_slider, logvar_slider]), kl_label, plot])
    box.mu_slider, box.logvar_slider, box.kl_label, box.plot = mu_slider, logvar_slider, kl_label, plot
    return box


# --------------------------------------------------------------- latent explorer
def _encode_png(probabilities: "torch.Tensor", scale: int) -> bytes:
    """A ``(28, 28)`` tensor of pixel probabilities in [0, 1] as PNG bytes, each
    pixel drawn as a ``scale × scale`` block (nearest neighbour: no blur)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (probabilities.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    big = np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    return buffer.getvalue()


import torch

try:  # ipywidgets is optional for the package, required for the explorers
    import ipywidgets as _widgets
except ImportError:  # pragma: no cover - only without ipywidgets
    _widgets = None


if _widgets is not None:

    class LatentExplorer(_widgets.VBox):
        """The widget returned by :func:`latent_explorer` (an ``ipywidgets.VBox``).

        Attributes a notebook or a test can use:

        * ``z`` — the current latent code, a ``(latent_dim,)`` float tensor on the CPU;
        * ``sliders`` — two ``FloatSlider`` setting ``z[dims[0]]`` and ``z[dims[1]]``;
        * ``dims_dropdown`` — which pair of latent dimensions the sliders move
          (``None`` when ``latent_dim <= 2``);
        * ``image`` — the ``ipywidgets.Image`` showing the decoded digit;
        * ``decoded()`` — the digit on display, ``(28, 28)`` pixel probabilities.
        """

        def __init__(self, model, extent: float = 3.0, step: float = 0.05, dims: tuple[int, int] = (0, 1),
                     z0: "torch.Tensor | None" = None, y: int | None = None, scale: int = 6):
            latent_dim = int(model.latent_dim)
            if extent <= 0 or step <= 0:
                raise ValueError(f"extent and step: must be positive, got {extent!r} and {step!r}")
            if getattr(model, "conditional", False) and y is None:
                raise ValueError("y: a conditional model needs the digit to draw, e.g. y=3")
            self.model = model
            self.scale = int(scale)
            self._y = None if y is None else torch.tensor([int(y)])
            self.z = torch.zeros(latent_dim) if z0 is None else z0.detach().cpu().float().reshape(-1).clone()
            if self.z.shape != (latent_dim,):
                raise ValueError(f"z0: expected shape ({latent_dim},), got {tuple(self.z.shape)}")
            if latent_dim == 1:
                dims = (0,)
            elif not (len(dims) == 2 and 0 <= dims[0] < latent_dim and 0 <= dims[1] < latent_dim
                      and dims[0] != dims[1]):
                raise ValueError(f"dims: two different dimensions in 0..{latent_dim - 1}, got {dims!r}")
            self.dims = tuple(int(d) for d in dims)
            self.sliders = [
                _widgets.FloatSlider(value=float(self.z[d].clamp(-extent, extent)), min=-extent, max=extent,
                                     step=step, description=f"z{d + 1}", continuous_update=True,
                                     readout_format=".2f")
                for d in self.dims
            ]
            self.dims_dropdown = None
            controls: list = []
            if latent_dim > 2:
                pairs = [(i, j) for i in range(latent_dim) for j in range(i + 1, latent_dim)]
                self.dims_dropdown = _widgets.Dropdown(
                    options=[(f"z{i + 1} and z{j + 1}", (i, j)) for i, j in pairs], value=tuple(sorted(self.dims)),
                    description="sliders move")
                self.dims = tuple(sorted(self.dims))
                self.dims_dropdown.observe(self._on_dims, names="value")
                controls.append(self.dims_dropdown)
            self.image = _widgets.Image(format="png")
            self.readout = _widgets.HTML()
            for slider in self.sliders:
                slider.observe(self._on_slider, names="value")
            self._syncing = False
            self._redraw()
            super().__init__(children=[*controls, *self.sliders, self.image, self.readout])

        @torch.no_grad()
        def decoded(self) -> "torch.Tensor":
            """The decoded digit for the current code, ``(28, 28)`` probabilities in [0, 1]."""
            device = next(self.model.parameters()).device
            was_training = self.model.training
            self.model.eval()
            y = None if self._y is None else self._y.to(device)
            image = torch.sigmoid(self.model.decode(self.z[None].to(device), y))[0, 0].float().cpu()
            self.model.train(was_training)
            return image

        def _on_slider(self, change) -> None:
            if self._syncing:
                return
            for slider, d in zip(self.sliders, self.dims):
                self.z[d] = float(slider.value)
            self._redraw()

        def _on_dims(self, change) -> None:
            # The code keeps its values; the sliders now show (and move) the new pair.
            self.dims = tuple(change["new"])
            self._syncing = True
            for slider, d in zip(self.sliders, self.dims):
                slider.description = f"z{d + 1}"
                slider.value = float(self.z[d].clamp(slider.min, slider.max))
                self.z[d] = float(slider.value)
            self._syncing = False
            self._redraw()

        def _redraw(self) -> None:
            self.image.value = _encode_png(self.decoded(), self.scale)
            shown = ", ".join(f"{v:.2f}" for v in self.z[:8].tolist()) + (", …" if len(self.z) > 8 else "")
            self.readout.value = f"<code>z = ({shown})</code>"


def latent_explorer(model, extent: float = 3.0, step: float = 0.05, dims: tuple[int, int] = (0, 1),
                    z0=None, y: int | None = None, scale: int = 6):
    """Sliders on latent coordinates that redraw the decoded digit live.

    Two ``FloatSlider`` set two coordinates of the latent code ``z`` (the others
    stay at ``z0``, default all zeros) within ``[-extent, extent]``; every move
    decodes ``z`` with ``model.decode`` and shows ``sigmoid(logits)`` as a
    ``28 × 28`` image, each pixel drawn ``scale`` screen pixels wide. When
    ``latent_dim > 2`` a dropdown picks which pair of dimensions the sliders
    move; switching keeps the code's other values.

    Args:
        model: a variational model with ``latent_dim`` and ``decode(z, y) -> logits``
            (``(1, latent_dim)`` in, ``(1, 1, 28, 28)`` out).
        extent: slider range, in standard deviations of the prior N(0, I).
        step: slider resolution.
        dims: the pair of (0-based) dimensions the sliders start on.
        z0: optional ``(latent_dim,)`` starting code (e.g. an encoded test image).
        y: the digit to draw, only for a conditional model.
        scale: screen pixels per image pixel.
    Returns:
        a :class:`LatentExplorer` (an ``ipywidgets.VBox``); ``display`` it.
        The rendered book cannot run its callbacks: pair it with a static figure.
    """
    if _widgets is None:  # pragma: no cover
        raise ImportError("latent_explorer needs ipywidgets: pip install ipywidgets")
    return LatentExplorer(model, extent=extent, step=step, dims=dims, z0=z0, y=y, scale=scale)
