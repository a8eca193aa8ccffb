"""Interactive explorers built with ipywidgets, and their static fallbacks.

Widgets need a live Python kernel (Jupyter, Colab): the rendered book cannot run
their callbacks, so each notebook also shows a static figure of what they do.
Each function returns something to ``display``, so ``display(kl_explorer())``
works anywhere.

Without ipywidgets (a plain Jupyter install: it is a dependency of the package,
but an environment can lack it), the explorers do not raise: they return a
*static* explorer with the same attributes (``sliders``, ``dims_dropdown``,
``decoded()``, ``mu_slider``, ``kl_label``, ...), whose values a cell can still
set, and which displays a matplotlib figure of what the sliders would show,
with one line saying how to get the sliders.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

try:  # ipywidgets is a dependency, but an environment may lack it: then the static explorers stand in
    import ipywidgets as _widgets
except ImportError:
    _widgets = None

STATIC_NOTE = ("ipywidgets is not installed, so this is a static view: run `%pip install ipywidgets`, "
               "restart the kernel, and run this cell again for the sliders.")


def _kl_nats(mu: float, logvar: float) -> float:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` in nats (one latent dimension)."""
    from .losses import kl_divergence

    return kl_divergence(torch.tensor([[float(mu)]]), torch.tensor([[float(logvar)]])).item()


def kl_densities_figure(mu: float = 1.0, logvar: float = -1.0, ax=None):
    """Draw ``q = N(mu, sigma^2)`` (``sigma^2 = exp(logvar)``) against the prior
    ``p = N(0, 1)`` on one axis, titled with ``KL(q || p)`` in nats.

    The static twin of :func:`kl_explorer` (the book cannot run widget callbacks).
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
    else:
        fig = ax.figure
    sigma = math.exp(0.5 * logvar)
    kl = _kl_nats(mu, logvar)
    lo, hi = min(-4.0, mu - 4 * sigma), max(4.0, mu + 4 * sigma)
    z = torch.linspace(lo, hi, 400, dtype=torch.float64)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).exp()
    q = torch.distributions.Normal(float(mu), sigma).log_prob(z).exp()
    ax.fill_between(z, prior, color="#777777", alpha=0.3, label="prior p(z) = N(0, 1)")
    ax.plot(z, q, color="#CC6677", lw=2, label=f"q(z) = N({mu:.2f}, {sigma:.2f}²)")
    ax.set_xlabel("z")
    ax.set_ylabel("density")
    ax.set_title(f"KL(q ‖ p) = {kl:.3f} nats")
    ax.legend(loc="best")  # where it hides least of the curves; vae_course.plots sets the size
    return fig


# --------------------------------------------------------------- without ipywidgets
class Control:
    """A slider's or a dropdown's value where ipywidgets is missing.

    Setting ``value`` behaves as on the widget: a slider's value is clamped to
    ``[min, max]``, a dropdown's must be one of its ``options`` (pairs
    ``(label, value)``), and every change calls the functions given to
    :meth:`observe` with ``{"name": "value", "old": ..., "new": ...}``.
    """

    def __init__(self, value: Any, description: str = "", min: float | None = None, max: float | None = None,
                 options: list[tuple[str, Any]] | None = None) -> None:
        self.description, self.min, self.max, self.options = description, min, max, options
        self._value = value
        self._observers: list[Callable[[dict], None]] = []

    def observe(self, handler: Callable[[dict], None], names: str = "value") -> None:
        self._observers.append(handler)

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        if self.min is not None and self.max is not None:
            new = min(max(float(new), self.min), self.max)
        if self.options is not None and new not in [v for _, v in self.options]:
            raise ValueError(f"{self.description or 'value'}: {new!r} is not one of the options")
        old, self._value = self._value, new
        if new != old:
            for handler in self._observers:
                handler({"name": "value", "old": old, "new": new, "owner": self})


class Label:
    """A text readout (``value``) where ipywidgets' ``HTML`` is missing."""

    def __init__(self, value: str = "") -> None:
        self.value = value


def _show_static(figure) -> None:
    """Display the one-line note and ``figure`` once (closed, so the inline backend does not show it again)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    print(STATIC_NOTE)
    display(figure)
    plt.close(figure)


class StaticKLExplorer:
    """What :func:`kl_explorer` returns without ipywidgets: the same ``mu_slider``,
    ``logvar_slider`` and ``kl_label``; displaying it draws :func:`kl_densities_figure`
    for the current values."""

    def __init__(self, mu: float, logvar: float) -> None:
        self.mu_slider = Control(float(mu), "μ", -3.0, 3.0)
        self.logvar_slider = Control(float(logvar), "log σ²", -4.0, 2.0)
        self.kl_label = Label()
        self.plot = None
        for slider in (self.mu_slider, self.logvar_slider):
            slider.observe(self._update)
        self._update()

    def _update(self, _change: dict | None = None) -> None:
        self.kl_label.value = f"KL(q ‖ p) = {_kl_nats(self.mu_slider.value, self.logvar_slider.value):.4f} nats"

    def figure(self):
        """The matplotlib figure of the current ``q`` against the prior."""
        return kl_densities_figure(self.mu_slider.value, self.logvar_slider.value)

    def _ipython_display_(self) -> None:
        _show_static(self.figure())


# --------------------------------------------------------------- KL explorer
def kl_explorer(mu: float = 1.0, logvar: float = -1.0):
    """Sliders for ``mu`` and ``log sigma^2`` that redraw ``q = N(mu, sigma^2)`` against
    the prior ``N(0, 1)`` and show ``KL(q || p)`` in nats (notebook 4).

    Returns an ``ipywidgets.VBox`` (display it). For programmatic use it carries
    ``.mu_slider``, ``.logvar_slider``, ``.kl_label`` (an ``HTML`` widget whose
    value reads ``KL(q || p) = <value> nats``) and ``.plot`` (an ``Output``).
    Without ipywidgets: a :class:`StaticKLExplorer` (same attributes, a static figure).
    """
    if _widgets is None:
        return StaticKLExplorer(mu, logvar)
    import matplotlib.pyplot as plt
    from IPython.display import display

    mu_slider = _widgets.FloatSlider(value=mu, min=-3.0, max=3.0, step=0.05, description="μ",
                                     continuous_update=False)
    logvar_slider = _widgets.FloatSlider(value=logvar, min=-4.0, max=2.0, step=0.05, description="log σ²",
                                         continuous_update=False)
    kl_label = _widgets.HTML()
    plot = _widgets.Output()

    def redraw(_change=None) -> None:
        m, lv = mu_slider.value, logvar_slider.value
        kl_label.value = f"KL(q ‖ p) = {_kl_nats(m, lv):.4f} nats"
        with plot:
            plot.clear_output(wait=True)
            fig = kl_densities_figure(m, lv)
            display(fig)
            plt.close(fig)

    mu_slider.observe(redraw, names="value")
    logvar_slider.observe(redraw, names="value")
    redraw()
    box = _widgets.VBox([_widgets.HBox([mu_slider, logvar_slider]), kl_label, plot])
    box.mu_slider, box.logvar_slider, box.kl_label, box.plot = mu_slider, logvar_slider, kl_label, plot
    return box


# --------------------------------------------------------------- latent explorer
def _encode_png(probabilities: torch.Tensor, scale: int) -> bytes:
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


class _LatentState:
    """The latent explorer without its display: the code ``z``, the dimensions the sliders
    move, the decoding, and what a slider or the dropdown does to them. The widget
    (:class:`LatentExplorer`) and the static fallback (:class:`StaticLatentExplorer`)
    differ only in the controls they make and in how they draw."""

    def _make_slider(self, value: float, extent: float, step: float, description: str):
        raise NotImplementedError

    def _make_dropdown(self, options: list, value: tuple[int, int]):
        raise NotImplementedError

    def _redraw(self) -> None:
        raise NotImplementedError

    def _init_state(self, model, extent: float, step: float, dims: tuple[int, ...], z0, y: int | None,
                    scale: int) -> list:
        """Validate the arguments, set the state and make the controls; returns the dropdown
        as a list (empty when ``latent_dim <= 2``)."""
        latent_dim = int(model.latent_dim)
        if extent <= 0 or step <= 0:
            raise ValueError(f"extent and step: must be positive, got {extent!r} and {step!r}")
        if getattr(model, "conditional", False) and y is None:
            raise ValueError("y: a conditional model needs the digit to draw, e.g. y=3")
        self.model, self.extent = model, float(extent)
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
        self.sliders = [self._make_slider(float(self.z[d].clamp(-extent, extent)), extent, step, f"z{d + 1}")
                        for d in self.dims]
        self.dims_dropdown = None
        controls: list = []
        if latent_dim > 2:
            pairs = [(i, j) for i in range(latent_dim) for j in range(i + 1, latent_dim)]
            self.dims = tuple(sorted(self.dims))
            self.dims_dropdown = self._make_dropdown([(f"z{i + 1} and z{j + 1}", (i, j)) for i, j in pairs],
                                                     self.dims)
            self.dims_dropdown.observe(self._on_dims, names="value")
            controls.append(self.dims_dropdown)
        for slider in self.sliders:
            slider.observe(self._on_slider, names="value")
        self._syncing = False
        return controls

    @torch.no_grad()
    def decode_codes(self, z: torch.Tensor) -> torch.Tensor:
        """Decode ``(n, latent_dim)`` codes: ``(n, 28, 28)`` pixel probabilities in [0, 1], on the CPU."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        y = None if self._y is None else self._y.expand(len(z)).to(device)
        images = torch.sigmoid(self.model.decode(z.to(device), y))[:, 0].float().cpu()
        self.model.train(was_training)
        return images

    def decoded(self) -> torch.Tensor:
        """The decoded digit for the current code, ``(28, 28)`` probabilities in [0, 1]."""
        return self.decode_codes(self.z[None])[0]

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


class StaticLatentExplorer(_LatentState):
    """What :func:`latent_explorer` returns without ipywidgets.

    The same ``z``, ``dims``, ``sliders`` and ``dims_dropdown`` (:class:`Control`
    values a cell can set) and ``decoded()``; displaying it draws a grid of the
    digits the two sliders would show, from ``-extent`` to ``extent`` (the other
    coordinates at their current values).
    """

    def __init__(self, model, extent: float = 3.0, step: float = 0.05, dims: tuple[int, int] = (0, 1),
                 z0: torch.Tensor | None = None, y: int | None = None, scale: int = 6, n: int = 7):
        self.n = int(n)
        self._init_state(model, extent, step, dims, z0, y, scale)

    def _make_slider(self, value: float, extent: float, step: float, description: str) -> Control:
        return Control(value, description, -extent, extent)

    def _make_dropdown(self, options: list, value: tuple[int, int]) -> Control:
        return Control(value, "sliders move", options=options)

    def _redraw(self) -> None:
        pass  # drawn when displayed

    def sweep(self) -> torch.Tensor:
        """The digits of the static view: ``(n * n, 1, 28, 28)`` (``(n, 1, 28, 28)`` for one
        dimension), row by row; across: the first slider's dimension from ``-extent`` to
        ``extent``; down: the second's from ``extent`` to ``-extent``."""
        values = torch.linspace(-self.extent, self.extent, self.n)
        if len(self.dims) == 1:
            z = self.z.repeat(self.n, 1)
            z[:, self.dims[0]] = values
        else:
            down, across = torch.meshgrid(values.flip(0), values, indexing="ij")
            z = self.z.repeat(self.n * self.n, 1)
            z[:, self.dims[0]], z[:, self.dims[1]] = across.reshape(-1), down.reshape(-1)
        return self.decode_codes(z)[:, None]

    def figure(self):
        """The static view as a matplotlib figure."""
        from .plots import image_grid

        names = [f"z{d + 1}" for d in self.dims]
        title = (f"{names[0]} from {-self.extent:g} to {self.extent:g} (left to right)"
                 + (f", {names[1]} from {self.extent:g} to {-self.extent:g} (top to bottom)" if len(names) > 1 else ""))
        return image_grid(self.sweep(), nrow=self.n, title=title)

    def _ipython_display_(self) -> None:
        _show_static(self.figure())


if _widgets is not None:

    class LatentExplorer(_LatentState, _widgets.VBox):
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
                     z0: torch.Tensor | None = None, y: int | None = None, scale: int = 6):
            self.image = _widgets.Image(format="png")
            self.readout = _widgets.HTML()
            controls = self._init_state(model, extent, step, dims, z0, y, scale)
            self._redraw()
            _widgets.VBox.__init__(self, children=[*controls, *self.sliders, self.image, self.readout])

        def _make_slider(self, value: float, extent: float, step: float, description: str):
            return _widgets.FloatSlider(value=value, min=-extent, max=extent, step=step, description=description,
                                        continuous_update=True, readout_format=".2f")

        def _make_dropdown(self, options: list, value: tuple[int, int]):
            return _widgets.Dropdown(options=options, value=value, description="sliders move")

        def _redraw(self) -> None:
            self.image.value = _encode_png(self.decoded(), self.scale)
            shown = ", ".join(f"{v:.2f}" for v in self.z[:8].tolist()) + (", …" if len(self.z) > 8 else "")
            self.readout.value = f"<code>z = ({shown})</code>"

else:
    LatentExplorer = StaticLatentExplorer  # so `from vae_course.widgets import LatentExplorer` still works


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
            (``(n, latent_dim)`` in, ``(n, 1, 28, 28)`` out).
        extent: slider range, in standard deviations of the prior N(0, I).
        step: slider resolution.
        dims: the pair of (0-based) dimensions the sliders start on.
        z0: optional ``(latent_dim,)`` starting code (e.g. an encoded test image).
        y: the digit to draw, only for a conditional model.
        scale: screen pixels per image pixel.
    Returns:
        a :class:`LatentExplorer` (an ``ipywidgets.VBox``); ``display`` it.
        The rendered book cannot run its callbacks: pair it with a static figure.
        Without ipywidgets: a :class:`StaticLatentExplorer` (same attributes; it
        displays a grid of the digits the sliders would show).
    """
    cls = LatentExplorer if _widgets is not None else StaticLatentExplorer
    return cls(model, extent=extent, step=step, dims=dims, z0=z0, y=y, scale=scale)
