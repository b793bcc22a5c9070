"""Matplotlib figures shared by TensorBoard logging and the report.

Built on `matplotlib.figure.Figure` directly (no pyplot), so no global backend is switched and
nothing needs a display.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def density_figure(density: dict) -> Figure:
    """Hessian eigenvalue density from stochastic Lanczos quadrature (Ghorbani et al. 2019)."""
    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    ax.semilogy(density["grid"], [max(v, 1e-12) for v in density["values"]])
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)")
    ax.set_title("Hessian spectral density")
    fig.tight_layout()
    return fig
