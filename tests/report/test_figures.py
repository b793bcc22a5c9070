"""Report figures: distinct styles at any arm count, batch ticks, legends off the data and capped,
fixed sizes, clipped 95 % intervals, log axes where the values span decades."""

import warnings

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lbbench.report import figures as rp


def _stat(values):
    from lbbench.report.data import mean_std

    return mean_std(values, (0.0, 1.0))


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


def test_interval_bars_stay_in_the_valid_range():
    stats = [{"mean": 0.65, "low": 0.2, "high": 1.1}, {"mean": 0.02, "low": -0.03, "high": 0.07}]
    lower, upper = rp.ci_errors(stats, (0.0, 1.0))
    assert [round(x, 9) for x in lower] == [0.45, 0.02] and [round(x, 9) for x in upper] == [0.35, 0.05]


def _drawn(fig):
    """Draw the figure as the report saves it, with every matplotlib warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FigureCanvasAgg(fig).draw()
    return fig


def _legend_texts(fig):
    return [
        t.get_text()
        for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for t in leg.get_texts()
    ]


def test_vs_batch_legend_below_the_axes_capped_at_twelve_entries_fixed_size():
    series = {
        f"arm {i} with a long name that goes on and on, lr=0.1, momentum=0.9, wd=1e-4": [
            (b, _stat([0.9 - i / 100, 0.91 - i / 100, 0.92 - i / 100])) for b in (256, 1024, 6000)
        ]
        for i in range(15)
    }
    fig = _drawn(rp.vs_batch_figure(series, "test accuracy", "title", (0.0, 1.0), others=[(256, 0.5)]))
    texts = _legend_texts(fig)
    assert len(texts) <= rp.MAX_LEGEND and any(t.startswith("+") and "more" in t for t in texts)
    assert all(len(t) <= rp.LABEL_CHARS for t in texts if not t.startswith("+"))
    ax, legend = fig.axes[0], fig.legends[0]
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0  # below the plot area, not on it
    assert tuple(fig.get_size_inches()) == (rp.WIDTH, rp.HEIGHT)
    assert "95% t interval" in fig._suptitle.get_text()


def test_ci_bars_are_drawn_from_the_interval_not_the_sd():
    stat = _stat([0.80, 0.85, 0.90])
    fig = _drawn(rp.vs_batch_figure({"a": [(256, stat)]}, "acc", "t", (0.0, 1.0)))
    segments = [c for c in fig.axes[0].collections if hasattr(c, "get_segments")][0].get_segments()
    (x0, y0), (x1, y1) = segments[0]
    assert abs(y0 - stat["low"]) < 1e-9 and abs(y1 - stat["high"]) < 1e-9 and y1 - y0 > 2 * stat["std"]


def _curve(epochs, batch):
    return {
        "epoch": list(epochs),
        "examples": [e * 1000 for e in epochs],
        "mean": [0.5] * len(epochs),
        "low": [None] * len(epochs),
        "high": [None] * len(epochs),
    }


def test_curves_are_drawn_against_epochs_and_examples_log_only_where_they_span_decades():
    long = _drawn(
        rp.curves_figure([("B=32", _curve(range(1, 11), 32)), ("B=8192", _curve(range(1, 335), 8192))], "acc")
    )
    assert [ax.get_xscale() for ax in long.axes] == ["log", "log"]
    assert [ax.get_xlabel() for ax in long.axes] == ["epoch (log)", "training examples seen (log)"]
    short = _drawn(rp.curves_figure([("B=32", _curve(range(1, 21), 32))], "acc"))
    assert [ax.get_xscale() for ax in short.axes] == ["linear", "linear"]
