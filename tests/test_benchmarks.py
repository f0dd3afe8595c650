"""benchmarks/throughput.py runs end to end on a CPU with the tiny model: every path, every figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_throughput_reports_every_path_and_stage(tiny_model: Path, tmp_path: Path) -> None:
    import throughput

    out = tmp_path / "t.json"
    args = ["--model", str(tiny_model), "--n", "12", "--rows", "4,8", "--reference", "4", "--dtype", "bfloat16"]
    (report,) = throughput.main([*args, "--device", "cpu", "--json", str(out)])
    assert json.loads(out.read_text()) == [report]
    paths = {r["path"]: r for r in report["paths"]}
    assert list(paths) == ["plain-4", "plain-8", "loglik", "zero-shot", "k-shot", "stream", "states", "states-half"]
    assert paths["states"]["stages"]["post-process"] == 0  # no vocabulary head, no predictions
    assert report["anchor"] == max(("plain-4", "plain-8"), key=lambda p: paths[p]["words_per_s"])
    assert report["anchor_agreement"] >= 0.9  # the same labels as the plain loop, up to bfloat16 near-ties
    assert 0 < report["max_delta_vs_float32"] < 0.1
    assert report["words"] > 12 and report["prompt_tokens"] > report["words"]
    for r in paths.values():
        assert r["words_per_s"] == pytest.approx(report["words"] / r["seconds"])
        assert r["share_of_floor"] == pytest.approx(r["words_per_s"] / report["floor_words_per_s"])
        assert r["passes"] >= 1 and 0 <= r["padding"] < 1 and r["device_busy"] is None  # no CUDA here
        assert set(r["stages"]) == set(throughput.STAGES)
        assert sum(r["stages"].values()) == pytest.approx(r["seconds"], rel=0.05)
        assert r["stages"]["forward"] > 0 and r["stages"]["tokenize"] > 0
    assert paths["plain-4"]["passes"] == 3 and paths["plain-8"]["passes"] == 2
    assert paths["stream"]["stages"]["write"] > 0 and paths["stream"]["stages"]["read"] > 0
    assert paths["loglik"]["stages"]["write"] == 0


def test_throughput_tables_keep_their_headers_whole_at_80_columns(
    tiny_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import throughput

    monkeypatch.setenv("COLUMNS", "80")
    args = ["--model", str(tiny_model), "--n", "4", "--rows", "4", "--reference", "0", "--device", "cpu"]
    throughput.main(args)
    shown = capsys.readouterr().out
    assert "…" not in shown.split("host seconds per stage")[0].split("\n", 2)[2]  # the title may wrap, no header is cut
    for header in ("words/s", "anchor", "floor", "passes", "padded", "/pass", "padding", "peak", "tokenize", "process"):
        assert header in shown


def test_active_learning_simulates_both_strategies(tiny_model: Path, tmp_path: Path) -> None:
    import active_learning
    import pandas as pd

    texts = [f"{word} number {i}" for i, word in enumerate(["great", "awful", "fine"] * 16)]
    labels = ["positive", "negative", "neutral"] * 16
    data = tmp_path / "posts.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    args = ["--model", str(tiny_model), "--data", str(data), "--prompt", "tweet", "--seeds", "0"]
    args += ["--start", "9", "--step", "6", "--until", "15", "--no-calibration"]  # the fit's own tests cover it
    cache = tmp_path / "x.npz"
    got = active_learning.main([*args, "--cache", str(cache)])
    assert got["sizes"] == [9, 15] and cache.is_file()
    for curves in got["curves"]:
        assert set(curves) == {"suggested", "random"} and all(len(c) == 2 for c in curves.values())
        assert all(0 <= r <= 1 for c in curves.values() for r in c)
    again = active_learning.main([*args, "--cache", str(cache)])
    assert again["curves"] == got["curves"]  # the cached pass gives the same rounds


def test_cascade_measures_each_exit_the_last_layer_and_the_early_exit_fit(
    deep_model: Path, exits_fit, tmp_path: Path
) -> None:
    import cascade

    from tests.conftest import fit_data

    measured = fit_data(tmp_path, n=64, name="more.csv")  # the first 40 are the fit's, left out
    args = ["--model", str(deep_model), "--fit", str(exits_fit.folder), "--data", str(measured)]
    got = cascade.main([*args, "--n", "20", "--device", "cpu", "--dtype", "float32", "--out", str(tmp_path / "c")])
    names = [r["name"] for r in got["rows"]]
    assert names == ["layer 1", "layer 2", "layer 4", "early exits 1,2 (max loss 0.01)"] and got["n"] == 20
    rows = {r["name"]: r for r in got["rows"]}
    assert rows["layer 1"]["shares"] == {"1": 1.0} and rows["layer 4"]["shares"] == {"4": 1.0}
    assert rows["layer 4"]["speedup"] == 1.0 and rows["layer 2"]["mean_layers"] == 2
    for r in got["rows"]:
        low, high = r["interval"]
        assert low <= r["accuracy"] <= high and r["words_per_s"] > 0 and sum(r["shares"].values()) == pytest.approx(1)
    assert (tmp_path / "c" / "frontier.png").stat().st_size > 1000
    assert json.loads((tmp_path / "c" / "cascade.json").read_text())["rows"][0]["name"] == "layer 1"


def test_cascade_measures_a_cascade_across_models(deep_model: Path, tiny_model: Path, tmp_path: Path) -> None:
    import cascade

    from tests.conftest import fit_data

    fitting, measured = fit_data(tmp_path, n=40), fit_data(tmp_path, n=64, name="more.csv")
    args = ["--model", str(deep_model), "--fit-data", str(fitting), "--data", str(measured), "--exits", ""]
    args += ["--then", str(tiny_model), "--n-fit", "40", "--n", "20", "--device", "cpu", "--dtype", "float32"]
    got = cascade.main([*args, "--out", str(tmp_path / "c")])
    names = [r["name"] for r in got["rows"]]
    assert names == ["layer 4", f"{tiny_model.name} layer 2", f"cascade to {tiny_model.name} (max loss 0.01)"]
    rows = {r["name"]: r for r in got["rows"]}
    assert rows[f"{tiny_model.name} layer 2"]["speedup"] == 1.0 and rows["layer 4"]["shares"] == {"4": 1.0}
    assert set(got["rows"][-1]["shares"]) <= {"4", f"{tiny_model.name}:2"} and got["rows"][-1]["mean_layers"] is None
