"""Curvature figures: the loss along the line between two minima, Hessian spectral densities, sharpness
against its stability threshold (edge of stability) and full-batch GD's loss and sharpness. The style
they share with every report figure is lbbench.report.figures'."""

from __future__ import annotations

from matplotlib.figure import Figure

from lbbench.report import figures

RATIO_COLUMNS = 3  # panels a row: five side by side are too narrow to read


def interpolation_figure(curve: dict) -> Figure:
    """Keskar et al. 2017 Fig. 3: loss (left axis, log) and accuracy (right) along θ(α)."""
    fig, (ax,) = figures.new_figure(
        f"1-D interpolation between the small-batch (α=0) and large-batch (α=1) solutions: {curve.get('model', '')}",
        "α",
        f"{curve.get('loss', 'cross_entropy').replace('_', '-')} loss",  # runs before --loss: cross-entropy
    )
    a = curve["alphas"]
    ax.semilogy(a, curve["train_loss"], "b-", marker=".", label="train loss")
    ax.semilogy(a, curve["test_loss"], "b--", marker=".", label="test loss")
    ax2 = ax.twinx()
    ax2.plot(a, curve["train_accuracy"], "r-", marker=".", label="train acc")
    ax2.plot(a, curve["test_accuracy"], "r--", marker=".", label="test acc")
    ax2.set_ylabel("accuracy")
    for x in (0.0, 1.0):
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1.0), frameon=False)
    return fig


def density_panels(by_model: dict) -> Figure:
    """Hessian spectral densities (SLQ, Ghorbani et al. 2019), one panel per model (their eigenvalue
    scales differ), one styled line per arm: `by_model` = {model: {label: density}}."""
    models = sorted(by_model)
    fig, axes = figures.new_figure(
        "Hessian spectral density at the end of training (SLQ), one panel per model",
        "eigenvalue",
        "density (log)",
        panels=len(models),
    )
    for ax, model in zip(axes, models):
        ax.set_title(model, fontsize=8)
        st = figures.styles(by_model[model])
        for label, d in by_model[model].items():
            s = {k: v for k, v in st[label].items() if k != "marker"}
            ax.semilogy(d["grid"], [max(v, 1e-12) for v in d["values"]], lw=1, label=label, **s)
        figures.legend_outside(ax, below=len(models) > 1)
    return fig


def ratio_figure(panels: list[dict], band: float) -> Figure:
    """Curvature / its stability threshold vs step, one panel each ({"title", "curves": [(label, xs, ys)],
    "halves": steps where each run's second half begins}), RATIO_COLUMNS a row; the threshold at 1 and
    a ±band shaded."""
    cols = max(1, min(RATIO_COLUMNS, len(panels)))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.9 * cols, 3.4 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        ax.axhspan(1 - band, 1 + band, color="0.85", zorder=0, label=f"±{band * 100:g} %")
        ax.axhline(1.0, color="k", lw=1, ls="--", label="threshold")
        for half in panel["halves"]:
            ax.axvline(half, color="0.5", lw=0.8, ls=":")  # second half of training: right of this
        for label, xs, ys in panel["curves"]:
            if xs:
                ax.plot(xs, ys, lw=1.2, marker=".", ms=3, label=label)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylim(0, max(2.0, ax.get_ylim()[1]))
        ax.legend(fontsize=7)
    for row in grid:
        row[0].set_ylabel("ratio to the stability threshold")
    return fig


def gd_figure(runs: list[dict], loss_name: str = "cross-entropy", log_loss: bool = False) -> Figure:
    """Cohen et al. 2021 Fig. 1 layout: GD train loss and lambda_max vs step, 2/eta dashed; `runs` =
    [{"label", "loss": (steps, values), "lambda_max": (steps, values), "threshold", "eval_examples"}],
    all trained on the loss `loss_name` (the left panel's axis label), on a log axis with `log_loss`
    (a catapult in the first steps would flatten the rest of a linear one)."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_lam = fig.subplots(1, 2)
    for i, r in enumerate(runs):
        ax_loss.plot(*r["loss"], color=f"C{i}", lw=1, label=r["label"])
        ax_lam.plot(*r["lambda_max"], color=f"C{i}", lw=1.2, marker=".", ms=3, label=r["label"])
        ax_lam.axhline(r["threshold"], color=f"C{i}", ls="--", lw=1)
    n_eval = runs[0]["eval_examples"] if runs else None
    ax_loss.set(
        title=f"full-batch GD: train loss (on {n_eval} of the training examples)", xlabel="step", ylabel=loss_name
    )
    if log_loss:
        ax_loss.set_yscale("log")
    ax_lam.set(title="λ_max of the training loss; dashed: 2/η", xlabel="step", ylabel="λ_max")
    for ax in (ax_loss, ax_lam):
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return fig
