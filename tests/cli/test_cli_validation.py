"""Everything that would fail after training is rejected before it, with exit 2 naming the flag or path."""

import os

import pytest

from lbbench.cli import train as main

TINY = ["--dataset=random", "--model=tiny_mlp", "--batch_size=100", "--epochs=1", "--noise_scale_groups=1"]


def run(tmp_path, *args):
    return main.main(["lbbench", *TINY, f"--workdir={tmp_path / 'runs'}", *args])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--learning_rate=nan"], "--learning_rate: must be a finite number"),
        (["--learning_rate=inf"], "--learning_rate: must be a finite number"),
        (["--momentum=nan"], "--momentum: must be a finite number"),
        (["--weight_decay=-inf"], "--weight_decay: must be a finite number"),
        (["--warmup_epochs=nan"], "--warmup_epochs: must be a finite number"),
        (["--epsilons=nan"], "--epsilons: must be a finite number"),
        (["--epsilons=1e-3,inf"], "--epsilons: must be a finite number"),
        (["--lanczos_iters=0"], "--lanczos_iters: must be at least 1 when --sharpness is on"),
        (["--sharpness_examples=0"], "--sharpness_examples: must be at least 1"),
        (["--lbfgs_iters=0"], "--lbfgs_iters: must be at least 1 when --epsilons is set"),
        (["--model=tiny_resnet"], "--model: tiny_resnet cannot take random's inputs of shape (20,)"),
        (["--coordinator_timeout_s=0"], "--coordinator_timeout_s: must be positive"),
    ],
)
def test_rejected_before_training(args, needle, tmp_path, capsys):
    code = run(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT, err
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    # nothing trained: no run folder was committed
    assert not os.path.isdir(tmp_path / "runs") or not [
        d for d in os.listdir(tmp_path / "runs") if not d.startswith(".")
    ]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--seed=9223372036854775808"], "--seed: must be in [0, 2^63), got 9223372036854775808"),
        (["--seeds=0,9223372036854775808"], "--seeds: must be in [0, 2^63)"),
        (
            ["--model=tiny_bn_mlp", "--noise_scale_groups=2", "--ghost_batch_size=20"],
            "--ghost_batch_size: 20 does not divide the noise-scale sub-batch of 50",
        ),
    ],
)
def test_rejected_before_loading_data(args, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lbbench.data.load_for", lambda *a, **k: pytest.fail("data loaded before validation"))
    code = run(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT and needle in err and len(err.splitlines()) == 1, err
    assert not os.path.exists(tmp_path / "runs")


def test_binary_flagfile_is_one_line_exit_2(tmp_path, capsys):
    flagfile = tmp_path / "run.flags"
    flagfile.write_bytes(bytes(range(128, 256)))
    code = run(tmp_path, f"--flagfile={flagfile}")
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT, err
    assert err == f"lbbench: error: --flagfile {flagfile} is not a text file of --name=value lines"


def test_measurement_flags_are_free_when_sharpness_is_off(tmp_path):
    assert run(tmp_path, "--nosharpness", "--lanczos_iters=0", "--sharpness_examples=0") == 0


def test_data_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "data"
    f.write_text("")
    code = main.main(["lbbench", "--dataset=mnist1d", f"--data_dir={f}", f"--workdir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT and f"--data_dir: {f} is a file" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "dataset, rel",
    [
        ("mnist", "mnist/train-images-idx3-ubyte.gz"),
        ("cifar10", "cifar10/cifar-10-python.tar.gz"),
        ("mnist1d", "mnist1d_60000_10000_seed42.npz"),
    ],
)
def test_directory_where_a_data_file_should_be(tmp_path, capsys, dataset, rel):
    (tmp_path / "data" / rel).mkdir(parents=True)
    code = main.main(
        ["lbbench", f"--dataset={dataset}", f"--data_dir={tmp_path / 'data'}", "--nodownload", f"--workdir={tmp_path}"]
    )
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT, err
    assert f"{tmp_path / 'data' / rel} is a directory" in err and "Error" not in err


def test_dataset_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar10").write_text("")
    code = main.main(["lbbench", "--dataset=cifar10", f"--data_dir={tmp_path / 'data'}", f"--workdir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == main.EXIT_BAD_INPUT and "cifar10 is a file" in err
