"""What a reader of report.md and its figures relies on: configurations (not bookkeeping) make the
rows, rows sorted by what varies and named by their runs, figures readable at any sweep size, and a
report never written where it must not be (read-only folders, run folders)."""

import json
import os
import warnings

import pytest
from PIL import Image

from lbbench.cli import report as report_cli
from lbbench.config import Config
from lbbench.report import data as report_data
from lbbench.report import figures
from lbbench.report.write import write_report
from tests.report.test_report import _fake_result


def _write(folder, name, result):
    os.makedirs(folder / name)
    (folder / name / "result.json").write_text(json.dumps(result))


def _study(tmp_path, batches=(4096, 512, 64), trials=14):
    """A tuned study: per batch size `trials` tuning trials (no sharpness, seed 0) and the winner t0
    re-run over seeds 1–3 with sharpness on, another eval interval and overwrite, as the study layer does."""
    sweep = tmp_path / "study"
    for b in batches:
        for t in range(trials):
            r = _fake_result(f"b{b}__t{t}", b, "momentum", 0, 0.80 + t / 100)
            r["config"].update(learning_rate=0.01 * (t + 1), sharpness=False, eval_every_steps=7)
            r["final"]["val_accuracy"] = 0.9 if t == 0 else 0.80 + t / 1000
            _write(sweep, f"b{b}__t{t}", r)
        for s in (1, 2, 3):
            r = _fake_result(f"b{b}__t0__s{s}", b, "momentum", s, 0.90 + s / 100)
            r["config"].update(learning_rate=0.01, sharpness=True, eval_every_steps=3, overwrite=True)
            _write(sweep, f"b{b}__t0__s{s}", r)
    return sweep


def test_bookkeeping_never_splits_a_configuration_and_rows_name_their_runs(tmp_path):
    sweep = _study(tmp_path)
    _, results, _ = report_data.load_sweep(str(sweep))
    keys = report_data.varying_keys(results)
    assert keys == ["batch_size", "learning_rate"]  # not sharpness, eval_every_steps, overwrite, seed
    winner = next(
        g for g in report_data.aggregate(results, keys) if g["batch_size"] == 64 and g["learning_rate"] == 0.01
    )
    assert winner["run_names"] == ["b64__t0", "b64__t0__s1", "b64__t0__s2", "b64__t0__s3"]
    assert winner["test_accuracy"]["n"] == 4
    text = (sweep / "report.md").read_text() if write_report(str(sweep)) else ""
    header = [line for line in text.splitlines() if line.startswith(("- compared", "- held fixed"))]
    for word in ("sharpness", "eval_every_steps", "overwrite", "workdir", "seed", "run_name"):
        assert all(word not in line for line in header)
    row = next(line for line in text.splitlines() if "b64__t0, b64__t0__s1, b64__t0__s2, b64__t0__s3" in line)
    assert row.startswith("| 64 | 0.01 | 4 | 0 |")


def test_rows_are_sorted_by_batch_size_numerically_not_by_folder_name(tmp_path):
    sweep = _study(tmp_path, trials=2)
    write_report(str(sweep))
    text = (sweep / "report.md").read_text()
    table = text.split("## Accuracy and generalization gap")[1].split("\n\n")[1].splitlines()[2:]
    batches = [int(line.split("|")[1]) for line in table]
    assert batches == sorted(batches) and batches[0] == 64
    runs = text.split("## All runs")[1].split("\n\n")[1].splitlines()[2:]
    assert [int(line.split("|")[2]) for line in runs] == sorted(int(line.split("|")[2]) for line in runs)


def test_a_plain_folder_of_runs_has_no_unknown_fields_and_names_every_run(tmp_path):
    folder = tmp_path / "runs"
    for i, (b, status) in enumerate([(512, "completed"), (64, "completed"), (4096, "diverged")]):
        r = _fake_result("", b, "adam", 0, 0.9, status)  # a run given no --run_name records none
        _write(folder, f"run{i}", r)
    write_report(str(folder))
    text = (folder / "report.md").read_text()
    assert "command:" not in text and "git commit:" not in text and "?" not in text
    assert "- run2: diverged" in text and "- :" not in text
    assert "| run1 | 64 |" in text and "|  |" not in text


def test_report_figures_are_readable_for_a_large_study(tmp_path):
    sweep = _study(tmp_path, batches=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 3000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(str(sweep), group_by="learning_rate")
    pngs = sorted(sweep.glob("*.png"))
    assert {"test_accuracy_vs_batch.png", "test_accuracy_curves.png"} <= {p.name for p in pngs}
    for png in pngs:
        with Image.open(png) as im:
            assert im.size[0] <= 2000 and im.size[1] <= 1000, png.name


def test_legends_of_the_report_figures_have_at_most_twelve_entries(tmp_path):
    sweep = _study(tmp_path, batches=tuple(2**k for k in range(3, 17)), trials=2)
    _, results, _ = report_data.load_sweep(str(sweep))
    keys = report_data.varying_keys(results)
    from lbbench.report.write import make_figures

    figs = make_figures(results, report_data.aggregate(results, keys), keys, None, group_by="batch_size")
    for name, fig in figs.items():
        texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        assert len(texts) <= figures.MAX_LEGEND, name
    curve_labels = [t.get_text() for t in figs["test_accuracy_curves"].legends[0].get_texts()]
    assert any(t.startswith("+") for t in curve_labels)  # 14 batch sizes: the rest summarised


def test_group_by_choices_and_bookkeeping_refused(tmp_path, capsys):
    sweep = _study(tmp_path, trials=2)
    _, results, _ = report_data.load_sweep(str(sweep))
    assert report_data.default_group_by(results, report_data.varying_keys(results)) == "batch_size"  # arms = batches
    assert report_cli.main(["report", str(sweep), "--group_by", "arm"]) == 0
    for bad in ("sharpness", "eval_every_steps", "seed", "no_such_key"):
        assert report_cli.main(["report", str(sweep), "--group_by", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "choose one of" in err and "sharpness," not in err


def test_a_read_only_sweep_folder_is_refused_in_one_line_and_out_writes_elsewhere(tmp_path, capsys, monkeypatch):
    sweep = _study(tmp_path, trials=1)
    before = sorted(os.listdir(sweep))

    def read_only(*a, **k):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(report_cli.tempfile, "mkstemp", read_only)
    assert report_cli.main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--out" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(sweep)) == before
    monkeypatch.undo()
    assert report_cli.main(["report", str(sweep), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.md").exists() and sorted(os.listdir(sweep)) == before


def test_a_write_failure_midway_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    sweep = _study(tmp_path, trials=1)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_cli, "write_report", full)
    assert report_cli.main(["report", str(sweep)]) == 2
    assert "No space left on device" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_chmod_read_only_folder_is_refused(tmp_path):
    sweep = _study(tmp_path, trials=1)
    os.chmod(sweep, 0o555)
    try:
        assert report_cli.main(["report", str(sweep)]) == 2
    finally:
        os.chmod(sweep, 0o755)


def test_a_run_folder_is_named_as_such_and_never_written_into(tmp_path, capsys):
    run = tmp_path / "one"
    _write(tmp_path, "one", _fake_result("one", 256, "adam", 0, 0.9))
    assert report_cli.main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is a run folder" in err and os.listdir(run) == ["result.json"]
    assert report_cli.main(["report", str(run), "--out", str(run / "report")]) == 2
    assert report_cli.main(["report", str(run), "--out", str(tmp_path / "one-report")]) == 0
    assert "| one |" in (tmp_path / "one-report" / "report.md").read_text() and os.listdir(run) == ["result.json"]


def test_results_load_is_sorted_tidy_and_names_every_run(tmp_path):
    from lbbench import results

    sweep = _study(tmp_path, trials=2)
    r = _fake_result("", 256, "momentum", 0, 0.5)
    r["config"].update(learning_rate=0.01)
    _write(sweep, "unnamed", r)
    df = results.load(str(sweep))
    assert list(df.columns[:5]) == ["run_name", "run_dir", "seed", "batch_size", "learning_rate"]
    assert not {"workdir", "sharpness", "eval_every_steps", "overwrite"} & set(df.columns)
    assert df.run_name.tolist()[:2] == ["b64__t0", "b64__t0__s1"] and "unnamed" in df.run_name.tolist()
    assert df.batch_size.tolist() == sorted(df.batch_size.tolist())
    wide = results.load(str(sweep), infrastructure=True)
    assert list(wide.columns[-3:]) != [] and "workdir" in wide.columns[len(df.columns) :]


def test_results_history_gives_every_run_and_epoch(tmp_path):
    from lbbench import results

    sweep = tmp_path / "h"
    for b in (1024, 128):
        r = _fake_result(f"b{b}", b, "adam", 0, 0.9)
        r["history"] = {"epoch": [1, 2, 3], "step": [10, 20, 30], "test_accuracy": [0.5, 0.7, 0.9]}
        _write(sweep, f"b{b}", r)
    h = results.history(str(sweep))
    assert list(h.columns[:7]) == ["run_name", "run_dir", "seed", "batch_size", "epoch", "step", "examples"]
    assert h.run_name.tolist() == ["b128"] * 3 + ["b1024"] * 3
    assert h.examples.tolist() == [1280, 2560, 3840, 10240, 20480, 30720]
    assert h.test_accuracy.tolist() == [0.5, 0.7, 0.9] * 2


def test_data_load_without_a_folder_uses_the_cli_cache_not_the_current_directory(monkeypatch, tmp_path):
    from lbbench import data
    from lbbench.data import embedded

    seen = []

    class Loaded:
        def subset(self, n):
            return self

    monkeypatch.setattr(embedded, "load_mnist1d", lambda cache_dir, num_val=0: seen.append(cache_dir) or Loaded())
    monkeypatch.setenv("LBBENCH_CACHE", str(tmp_path / "cache"))
    data.load("mnist1d")
    data.load("mnist1d", Config().data_dir)  # the README's old call: an unset --data_dir is ""
    data.load_for(Config())
    assert seen == [str(tmp_path / "cache")] * 3
