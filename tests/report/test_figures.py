"""Report figures: distinct styles at any arm count, batch ticks, legends off the data, clipped bars."""

from matplotlib.figure import Figure

from lbbench.report import figures as rp


def _stat(values):
    import numpy as np

    a = np.asarray(values, float)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "n": a.size,
        "values": list(values),
    }


def test_styles_are_distinct_for_many_arms():
    for n in (3, 12, 40):
        st = rp.styles([f"arm{i}" for i in range(n)])
        combos = {(tuple(s["color"]), s["linestyle"], s["marker"]) for s in st.values()}
        assert len(combos) == n and all(s["marker"] for s in st.values())


def test_batch_axis_labels_every_batch_size_used():
    ax = Figure().add_subplot()
    rp.batch_axis(ax, [256, 6000, 64, 256])
    assert list(ax.get_xticks()) == [64, 256, 6000]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "256", "6000"]


def test_error_bars_stay_in_the_valid_range():
    lower, upper = rp.clipped_errors([0.65, 0.02], [0.37, 0.05], (0.0, 1.0))
    assert lower == [0.37, 0.02] and upper == [0.35, 0.05]


def test_vs_batch_legend_outside_the_axes_with_one_entry_per_arm():
    arms = {
        f"arm {i}": [
            {"batch_size": b, "acc": _stat([0.9 - i / 100, 0.91 - i / 100, 0.92 - i / 100])} for b in (256, 1024, 6000)
        ]
        for i in range(15)
    }
    fig = rp.vs_batch_figure(arms, "acc", "test accuracy", "title", (0.0, 1.0))
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 15
    fig.canvas.draw()
    assert legend.get_window_extent().x0 > ax.get_window_extent().x1  # right of the plot area
    assert "s.d." in fig._suptitle.get_text()
