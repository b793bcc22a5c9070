"""halving_vs_full on two real quick sweeps (halved, and --full_search): the same winners, since a
promoted trial is the same run as its uninterrupted twin; and the command's bad input."""

import json

import pytest

from lbbench.cli import sweep as sweep_cli
from lbbench.report import halving_vs_full


@pytest.mark.slow
def test_halving_and_full_search_agree_on_the_quick_grid(tmp_path):
    assert sweep_cli.main(["sweep", "halving_check", "--quick", "--workdir", str(tmp_path / "sh")]) == 0
    assert (
        sweep_cli.main(["sweep", "halving_check", "--quick", "--workdir", str(tmp_path / "fs"), "--full_search"]) == 0
    )
    sh, fs = tmp_path / "sh" / "halving_check-quick", tmp_path / "fs" / "halving_check-quick"
    out = tmp_path / "cmp"
    assert halving_vs_full.main(["x", str(sh), str(fs), "--out", str(out)]) == 0
    c = json.loads((out / "halving_vs_full.json").read_text())
    assert {r["batch_size"] for r in c["rows"]} == {256, 1024}
    full_trials = {json.loads(p.read_text())["status"] for p in fs.glob("b*__t[0-9]/result.json")}
    assert full_trials == {"completed"}  # --full_search: no trial stopped
    assert not (fs / "halving.json").exists() and (sh / "halving.json").exists()
    for r in c["rows"]:
        # the halved winner is a full-budget trial; here (3 trials, 2 epochs) both searches agree
        assert r["same"] and r["rank_in_full"] == 1 and r["trials"] == 3
        assert r["halving_seeds"]["mean"] == pytest.approx(r["full_seeds"]["mean"], abs=1e-6)
        assert halving_vs_full.verdict(r) == "same winner"
    assert c["cost"]["halved"]["all"] > 0 and c["cost"]["full"]["all"] > 0
    assert "| 256 |" in (out / "halving_vs_full.md").read_text()


def test_difference_and_verdicts():
    d = halving_vs_full.difference([0.9, 0.91, 0.92], [0.8, 0.81, 0.82])
    assert d["difference"] == pytest.approx(0.1) and 0 < d["low"] < 0.1 < d["high"]
    row = {"same": False, "difference": d}
    assert halving_vs_full.verdict(row) == "different winner, better beyond the seed noise"
    row["difference"] = halving_vs_full.difference([0.9, 0.8, 0.85], [0.86, 0.84, 0.85])
    assert halving_vs_full.verdict(row) == "different winner, within the seed noise"
    row["difference"] = halving_vs_full.difference([0.9], [0.8])
    assert halving_vs_full.verdict(row) == "different winner (too few seeds to judge)"


def test_a_folder_without_a_finished_sweep_exits_2(tmp_path, capsys):
    assert halving_vs_full.main(["x", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished sweep" in err[0]
