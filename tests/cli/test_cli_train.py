"""The CLI: every bad input gives exit 2 and one line naming the problem, never a traceback."""

import json
import os
import subprocess
import sys

import pytest

from lbbench.cli import train as main
from lbbench.report import run_summary

TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=100", "--epochs=1", "--nosharpness"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--batch_size=0"], "--batch_size: must be positive"),
        (["--batch_size=-8"], "--batch_size: must be positive"),
        (["--batch_size=2000"], "--batch_size: 2000 exceeds the 1000 training examples"),
        (["--dataset=imagenet"], "--dataset: unknown value 'imagenet'"),
        (["--model=vit"], "--model: unknown value 'vit'"),
        (["--optimizer=rmsprop"], "--optimizer: unknown value"),
        (["--schedule=cyclic"], "--schedule: unknown value"),
        (["--learning_rate=-1"], "--learning_rate: must not be negative"),
        (["--epochs=-3"], "--epochs: must be positive"),
        (["--batch_size=abc"], "--batch_size=abc"),
        (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
        (["--ghost_batch_size=30"], "--ghost_batch_size: 30 does not divide"),
        (["--loss=foo"], "--loss: unknown value 'foo'"),
    ],
)
def test_bad_input_exit_2_one_line(args, needle, capsys, tmp_path):
    code = main.main(["lbbench"] + TINY + [f"--workdir={tmp_path}"] + args)
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT
    assert needle in err and err.startswith("lbbench: error:") and len(err.splitlines()) == 1


def test_unwritable_workdir(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main.main(["lbbench"] + TINY + [f"--workdir={blocker}/sub"])
    assert code == main.EXIT_BAD_INPUT
    assert "--workdir: cannot write to" in capsys.readouterr().err


def test_batch_not_divisible_by_devices_in_real_process(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbbench.main",
            *TINY,
            "--batch_size=100",
            "--noise_scale_groups=1",
            f"--workdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--batch_size: 100 is not divisible by the 8 devices" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_diverged_run_exit_3_and_result_kept(capsys, tmp_path):
    code = main.main(
        ["lbbench"]
        + TINY
        + ["--optimizer=sgd", "--learning_rate=1e30", "--epochs=3", f"--workdir={tmp_path}", "--run_name=boom"]
    )
    assert code == main.EXIT_DIVERGED
    assert "DIVERGED" in capsys.readouterr().err
    assert json.loads((tmp_path / "boom" / "result.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_seeds_group_where_every_seed_diverged(capsys, tmp_path):
    args = ["--optimizer=sgd", "--learning_rate=1e30", "--epochs=2", "--seeds=0,1", f"--workdir={tmp_path}"]
    code = main.main(["lbbench", *TINY, *args, "--run_name=boom"])
    captured = capsys.readouterr()
    assert code == main.EXIT_DIVERGED
    assert "lbbench: 2 seeds, none completed (2 diverged): no mean or interval to report" in captured.out
    assert "mean ± sample std" not in captured.out  # no header followed by nothing
    assert "run boom_s0 diverged" in captured.out and ".new-" not in captured.out + captured.err  # no staging name


def test_successful_run_prints_where_results_went(capsys, tmp_path):
    code = main.main(["lbbench"] + TINY + [f"--workdir={tmp_path}", "--run_name=ok"])
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch   1/1" in out and str(tmp_path / "ok" / "result.json") in out


def test_mse_run_records_its_loss_and_reports_the_mse(capsys, tmp_path):
    """--loss=mse trains and evaluates Cohen et al.'s squared loss: result.json says so, and its test
    loss is 0.5 * mean |f(x) - onehot(y)|^2 recomputed here from the saved parameters."""
    import numpy as np

    from lbbench import data
    from lbbench.results import load_run

    code = main.main(["lbbench"] + TINY + ["--loss=mse", f"--workdir={tmp_path}", "--run_name=mse"])
    assert code == 0
    result = json.loads((tmp_path / "mse" / "result.json").read_text())
    assert result["status"] == "completed" and result["config"]["loss"] == "mse"
    cfg, model, variables = load_run(str(tmp_path / "mse"))
    ds = data.load_for(cfg)
    logits = np.asarray(model.apply(variables, ds.x_test, train=False), np.float64)
    want = 0.5 * ((logits - np.eye(logits.shape[1])[ds.y_test]) ** 2).sum(axis=1).mean()
    assert result["final"]["test_loss"] == pytest.approx(want, rel=1e-5)


def test_help_is_grouped_with_usage_and_examples(capsys):
    import dataclasses

    from lbbench.config import Config
    from lbbench.config.sections import SECTIONS

    assert main.main(["lbbench", "--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("usage: lbbench")
    assert "examples:" in lines and sum(l.startswith("  lbbench --") for l in lines) >= 2
    positions = [lines.index(f"{s}:") for s in SECTIONS]
    assert positions == sorted(positions)
    for f in dataclasses.fields(Config):  # every flag once, in its own section
        flag = f"--[no]{f.name} " if isinstance(f.default, bool) else f"--{f.name}="
        hits = [i for i, l in enumerate(lines) if l.startswith("  " + flag)]
        section = next(s for s, names in SECTIONS.items() if f.name in names)
        assert len(hits) == 1 and lines.index(f"{section}:") < hits[0], f.name
    for name in main.make_flags():  # and every flag of the command (--seeds, --flagfile, ...)
        if name not in ("help", "helpshort", "helpfull", "helpxml", "undefok", "flagfile"):
            assert f"--{name}=" in out or f"--[no]{name}" in out, name
    assert "--flagfile=FILE" in out


def test_flagfile_sets_flags(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--batch_size=512\n--schedule=warmup\n--epsilons=0.01\n")
    [cfg] = main.parse(["lbbench", f"--flagfile={flagfile}", "--epochs=3"])
    assert (cfg.batch_size, cfg.schedule, cfg.epsilons, cfg.epochs) == (512, "warmup", (0.01,), 3)
    assert main.parse(["lbbench", f"--flagfile={flagfile}", "--batch_size=1024"])[0].batch_size == 1024


def test_batch_250_names_what_the_user_set(capsys, tmp_path):
    code = main.main(["lbbench", "--batch_size=250", f"--workdir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "--batch_size: 250 is not divisible by 4, the default --noise_scale_groups" in err


def test_run_summary_is_one_value_a_line_with_its_meaning():
    result = {
        "final": {"train_accuracy": 0.77, "val_accuracy": 0.75, "test_accuracy": 0.7441, "generalization_gap": 0.0244},
        "sharpness": {
            "lambda_max": 23.9,
            "hessian_trace": 316.2,
            "hessian_trace_stderr": 15.1,
            "epsilon_sharpness": {"subspace_0.001": 7.5, "full_0.001": 18.7},
        },
        "noise_scale": {"b_simple": 1711.4},
        "timing": {"total_s": 17.34, "train_s": 6.0, "compile_s": 4.0, "instruments": {"a": {"seconds": 5.5}}},
    }
    lines = run_summary.block(result)
    assert lines[0].split() == ["accuracy", "train", "0.7700,", "validation", "0.7500,", "test", "0.7441"]
    assert lines[1].split()[:2] == ["gap", "+0.0244"]
    by_name = {line.split("  ")[1].strip(): line for line in lines}
    assert "23.9" in by_name["λ_max"] and "316 ± 15" in by_name["Hessian trace"]
    eps = [line for line in lines if "ε-sharpness" in line]
    assert "18.7 %" in eps[0] and "full space" in eps[0] and "7.5 %" in eps[1] and "subspace" in eps[1]
    assert "1711" in by_name["B_simple"] and "critical batch size" in by_name["B_simple"]
    assert by_name["wall time"].split()[2:] == [
        "17.3",
        "s",
        "training",
        "6.0",
        "s,",
        "compiling",
        "4.0",
        "s,",
        "measuring",
        "5.5",
        "s",
    ]


def test_readme_and_help_state_the_same_time_for_the_main_job():
    from _paths import ROOT

    from lbbench.cli.flags import MAIN_JOB_TIME, help_text

    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert MAIN_JOB_TIME in help_text()
    assert MAIN_JOB_TIME in " ".join(readme.split())
