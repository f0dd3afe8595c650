"""compare --html: a self-contained report, checked by parsing it and by opening it in a real browser."""

from __future__ import annotations

import base64
import json
import math
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.workflows.compare import pareto_front, tied_ranks
from sentiq.workflows.metrics import wilson

runner = CliRunner()
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class Page(HTMLParser):
    """What the tests look at: the ranking rows, every image source, every attribute naming a place."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.alerts = 0
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href", "action", "data") and v]
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag == "table":
            self._table = a.get("id")
        if self._table == "ranking" and tag == "tr" and "data-run" in a:
            self.rows.append({"run": a["data-run"], "values": [], "texts": []})
        if self._table == "ranking" and tag == "td":
            self.rows[-1]["values"].append(a["data-v"])
            self._cell = []
        if a.get("role") == "alert":
            self.alerts += 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1]["texts"].append("".join(self._cell))
            self._cell = None
        if tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def results(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs (two on one sample, one on another) and a prompt search, made with the tiny model."""
    root = tmp_path_factory.mktemp("results")
    data = root.parent / "reviews.csv"
    rows = [(f"r{i}", f"review number {i} was {'great' if i % 2 else 'dull'}", i % 2) for i in range(12)]
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(data, index=False)
    for run_id, n, method in (("a", 8, "loglik"), ("b", 8, "zero-shot"), ("c", 6, "loglik")):
        args = evaluate_args(tiny_model, data, root, run_id, n, "--method", method, "--max-new-tokens", "2")
        assert runner.invoke(app, args).exit_code == 0
    tune = ["tune-prompt", "--model", str(tiny_model), "--n", "4", "--prompts", "classifier", "--ensemble", "0"]
    assert runner.invoke(app, [*tune, "--output-dir", str(root)]).exit_code == 0
    return root


@pytest.fixture(scope="module")
def report(results: Path) -> Path:
    path = results.parent / "report.html"
    result = runner.invoke(app, ["compare", "--results-dir", str(results), "--html", str(path), "--write"])
    assert result.exit_code == 0, result.output
    return path


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_report_holds_every_run_sorted_with_embedded_images_only(report: Path, results: Path) -> None:
    text = report.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert sorted(r["run"] for r in page.rows) == ["a", "b", "c"]
    table = pd.read_csv(results / "comparison.csv")
    assert [r["run"] for r in page.rows] == list(table["run_id"])  # the ranking's order
    f1 = [float(r["values"][6]) for r in page.rows]  # macro-F1, the default metric
    assert f1 == sorted(f1, reverse=True)
    # every run's confusion matrix and latency plot, the confidence figure of the runs with probabilities
    # (loglik's; the tiny model's zero-shot answers name no label), the charts and the heatmap: all decode
    assert len(page.images) == 2 + 2 * 3 + 2 + 1  # a chart per sample: a and b on one, c on another
    assert text.count('alt="Reliability diagram and risk–coverage curve of') == 2
    assert 'alt="Reliability diagram and risk–coverage curve of b"' not in text
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        width, height = _png_size(base64.b64decode(src.split(",", 1)[1]))
        assert width > 100 and height > 100
    assert all(link.startswith("data:") for link in page.links)
    for external in ("http://", "https://", "//cdn", "@import", "<link"):
        assert external not in text
    assert page.alerts == 1  # runs a/b and c were made on different samples


def test_ranks_are_ties_where_intervals_overlap() -> None:
    table = pd.DataFrame({"acc_low": [0.90, 0.88, 0.70, 0.60], "acc_high": [0.98, 0.97, 0.85, 0.86]})
    assert tied_ranks(table) == [1, 1, 3, 3]  # the third and fourth lie wholly below the first two


def test_wilson_interval_matches_its_formula() -> None:
    k, n, z = 90, 100, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(k, n) == pytest.approx((centre - half, centre + half))
    low, high = wilson(100, 100)
    assert high == pytest.approx(1.0) and 0.95 < low < 0.97  # never [1, 1] at the edge


def test_pareto_front_keeps_runs_nothing_beats_on_both() -> None:
    table = pd.DataFrame({"accuracy": [0.95, 0.90, 0.85, 0.80], "words_per_s": [10, 30, 80, 50]})
    assert pareto_front(table) == [True, True, True, False]


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium or Chrome on this machine (apt-get install chromium)")
@pytest.mark.parametrize("size", ["1280,800", "390,844"])
def test_report_renders_in_a_browser(report: Path, results: Path, tmp_path: Path, size: str) -> None:
    from matplotlib.image import imread

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    flags += ["--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    url = report.resolve().as_uri()
    subprocess.run(
        [_browser(), *flags, f"--window-size={size}", f"--screenshot={shot}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert _png_size(shot.read_bytes()) == tuple(int(v) for v in size.split(","))
    pixels = imread(shot)[..., :3]
    background = pixels[0, 0]
    drawn = (abs(pixels - background).sum(axis=-1) > 0.1).mean()
    assert drawn > 0.05  # text, table and chart, not a blank page
    dom = subprocess.run(
        [_browser(), *flags, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    first = json.loads(pd.read_csv(results / "comparison.csv").iloc[[0]].to_json(orient="records"))[0]
    assert f'data-run="{first["run_id"]}"' in dom and first["model"] in dom


@pytest.mark.skipif(_browser() is None, reason="no Chromium or Chrome on this machine (apt-get install chromium)")
def test_the_ranking_fits_1280_pixels_with_long_names(results: Path, tmp_path: Path) -> None:
    root = tmp_path / "results"
    shutil.copytree(results, root)
    config = json.loads((root / "a" / "config.json").read_text())
    long = {
        "model_label": "qwen2.5-coder-1.5b-instruct-from-a-local-folder",
        "method_title": "k-shot k=4 loglik contextual-calibrated +last 80 words",
        "prompts": [{"ref": r} for r in ("classifier:capital", "question-last:capital", "one-word")],
        "dataset": {"source": "/data/reviews/imdb-test-with-a-long-file-name.parquet"},
    }
    shutil.copytree(root / "a", root / "long-run-id-20261202-073000-qwen2.5-coder-1.5b-instruct-k-shot")
    (root / "long-run-id-20261202-073000-qwen2.5-coder-1.5b-instruct-k-shot" / "config.json").write_text(
        json.dumps({**config, **long})
    )
    page = tmp_path / "report.html"
    assert runner.invoke(app, ["compare", "--results-dir", str(root), "--html", str(page)]).exit_code == 0
    probe = "<script>const s = document.querySelector('.scroll'); document.body.dataset.overflow = s.scrollWidth - s.clientWidth;</script>"
    page.write_text(page.read_text().replace("</body>", probe + "</body>"))  # the test's copy only
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"]
    flags += ["--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [_browser(), *flags, "--dump-dom", page.resolve().as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-overflow="0"' in dom  # no horizontal scrolling


def test_log_axis_labels_do_not_run_together() -> None:
    from sentiq.workflows.plots import accuracy_speed_figure

    for speeds in ([700, 950, 7_200, 9_100], [120, 135, 303, 400], [30, 45_000], [17.8, 20.0], [18.2, 18.9, 19.4]):
        table = pd.DataFrame(
            {
                "model": ["a", "a", "b", "b"][: len(speeds)],
                "method": ["loglik", "zero-shot", "loglik", "k-shot"][: len(speeds)],
                "accuracy": [0.8, 0.85, 0.9, 0.92][: len(speeds)],
                "acc_low": [0.7, 0.75, 0.8, 0.82][: len(speeds)],
                "acc_high": [0.9, 0.93, 0.95, 0.97][: len(speeds)],
                "words_per_s": speeds,
                "pareto": [True] * len(speeds),
            }
        )
        fig = accuracy_speed_figure(table)
        fig.canvas.draw()
        ax = fig.axes[0]
        labels = [t for t in [*ax.get_xticklabels(which="both")] if t.get_text() and t.get_visible()]
        low, high = ax.get_xlim()
        boxes = sorted(
            (b.x0, b.x1, t.get_text())
            for t in labels
            if low <= t.get_position()[0] <= high
            for b in [t.get_window_extent()]
        )
        assert boxes
        assert all(a[1] <= b[0] for a, b in zip(boxes, boxes[1:])), boxes
        names = [text for _, _, text in boxes]
        assert len(names) == len(set(names)), names  # each speed named once ('18 18 18 19 20 20' was not)


def test_each_label_set_and_sample_gets_its_own_panel_and_front(tmp_path: Path) -> None:
    """A run on one sample never hides a run on another from its front: accuracies of other samples do
    not compare."""
    from tests.test_tune_compare import _fake_run

    root = tmp_path / "runs"
    _fake_run(root, "fast-good", "m", "loglik", 0.95, 0.95, seed=0)  # beats both others on both axes...
    _fake_run(root, "slow-poor", "m", "zero-shot", 0.5, 0.5, seed=0)
    _fake_run(root, "other-sample", "m", "zero-shot", 0.6, 0.6, seed=1)  # ...but this one is on another sample
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["compare", "--results-dir", str(root), "--html", str(page), "--write"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(root / "comparison.csv").set_index("run_id")
    assert table["pareto"].to_dict() == {"fast-good": True, "other-sample": True, "slow-poor": False}
    text = page.read_text(encoding="utf-8")
    assert text.count('<section class="panel">') == 2
    assert "positive, negative · imdb-sample n=4 seed=0" in text and "seed=1" in text
    from matplotlib.image import imread

    assert imread(root / "comparison.png").shape[0] > 1000  # two panels, stacked
