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
