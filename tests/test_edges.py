"""Careless input to compare, resume and the release's version: each ends in one line that names it,
and nothing is written that was not asked for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app
from tests.test_tune_compare import _fake_run

runner = CliRunner()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _fake_run(root, "a", "m", "loglik", 0.9, 0.9)
    _fake_run(root, "b", "m", "zero-shot", 0.8, 0.8)
    return root


def test_compare_writes_a_report_into_folders_it_makes(saved: Path, tmp_path: Path) -> None:
    page = tmp_path / "missing" / "dir" / "report.html"
    result = runner.invoke(app, ["compare", "--results-dir", str(saved), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert page.is_file() and sorted(p.name for p in page.parent.iterdir()) == ["report.html"]  # no temporary left


def test_compare_refuses_a_report_path_it_cannot_write_before_ranking(saved: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine", encoding="utf-8")
    for page, message in [(blocker / "report.html", "is a file, not a folder"), (tmp_path, "is a folder")]:
        result = runner.invoke(app, ["compare", "--results-dir", str(saved), "--html", str(page)])
        assert result.exit_code == 1 and message in result.output and ".tmp" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert blocker.read_text(encoding="utf-8") == "mine"
    with pytest.raises(TypeError, match="html must be a path, not int"):
        sentiq.compare(saved, html=3)  # type: ignore[arg-type]


def test_compare_without_files_says_nothing_of_saving(saved: Path) -> None:
    result = runner.invoke(app, ["compare", "--results-dir", str(saved)])
    assert result.exit_code == 0 and "saved" not in result.output
    written = runner.invoke(app, ["compare", "--results-dir", str(saved), "--write"])
    assert f"saved {saved / 'comparison.csv'}" in " ".join(written.output.split())


@pytest.mark.parametrize("content", ['["a", "list"]', "7", '"text"', "null"])
def test_a_run_whose_config_is_not_an_object_is_refused_by_name(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(content, encoding="utf-8")
    with pytest.raises(sentiq.RunError, match="run odd: its config.json holds a .*, not a run's settings"):
        sentiq.resume_run("odd", tmp_path)
    result = runner.invoke(app, ["evaluate", "--resume", "odd", "--output-dir", str(tmp_path)])
    assert result.exit_code == 1 and "its config.json holds a" in result.output and "Traceback" not in result.output
    assert (folder / "config.json").read_text(encoding="utf-8") == content


def test_the_version_is_the_changelogs_newest_release() -> None:
    changelog = (Path(__file__).parent.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    first = re.search(r"^## (\S+)", changelog, flags=re.MULTILINE)
    assert first is not None and first.group(1) == sentiq.__version__
    assert runner.invoke(app, ["--version"]).output.strip() == f"sentiq {sentiq.__version__}"


def test_a_loaded_classifier_is_reused_as_the_model_and_refused_on_ray(tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.settings import RaySettings
    from tests.conftest import fit_data

    clf = sentiq.load(str(tiny_model), device="cpu", dtype="float32")
    made = sentiq.fit(clf, dataset=str(fit_data(tmp_path)), n=24, output_dir=tmp_path)
    assert made.card["model"]["label"] == tiny_model.name and made.probe.n == 24
    with pytest.raises(sentiq.OptionError, match="a Classifier is a model loaded in this process; on Ray"):
        sentiq.evaluate(
            clf, "loglik", dataset=str(fit_data(tmp_path, name="d.csv")), n=4, scale=RaySettings(backend="ray")
        )
    with pytest.raises(TypeError, match="model must be a string"):
        sentiq.evaluate(3.5, "loglik")  # type: ignore[arg-type]
