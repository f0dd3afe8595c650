"""The documentation as a reader meets it: the README's Python section runs as written (with the tiny
model for its model), the example script runs, every relative link in README and docs resolves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_section() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_python_section_runs_as_written(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = python_section()
    assert 'model = "0.5b"' in code  # the one line the test changes: no model is downloaded here
    code = code.replace('model = "0.5b"', f"model = {str(tiny_model)!r}")
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"id": ["a", "b"], "text": ["Loved it.", "Hated it."]}).to_csv("reviews.csv", index=False)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "k-shot" in printed
    assert len(pd.read_parquet(tmp_path / "labels.parquet")) == 2
    assert len([p for p in (tmp_path / "results").iterdir() if (p / "metrics.json").is_file()]) == 2


def test_the_example_script_runs(tiny_model: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "label_a_frame.py"), "--model", str(tiny_model), "--n", "6"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "film-3" in done.stdout and "zero-shot" in done.stdout and "acc_low" in done.stdout


def test_the_example_script_fails_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "label_a_frame.py"), "--model", "/no/such/model"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path) -> None:
    targets = [t.split("#")[0] for t in LINK.findall(document.read_text()) if "://" not in t and not t.startswith("#")]
    broken = [t for t in targets if t and not (document.parent / t).exists()]
    assert not broken, f"{document.name}: {broken}"


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) [gone](nowhere.md#x) [web](https://example.com)")
    targets = [t.split("#")[0] for t in LINK.findall(page.read_text()) if "://" not in t]
    assert [t for t in targets if not (page.parent / t).exists()] == ["nowhere.md"]


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "results").glob("*/comparison.csv")))
def test_committed_rankings_rank_the_runs_beside_them(folder: str) -> None:
    """scripts/compare_results.sh re-makes them; a run added or changed without it fails here."""
    import sentiq

    committed = pd.read_csv(ROOT / "results" / folder / "comparison.csv", dtype={"run_id": str})
    now = sentiq.compare(ROOT / "results" / folder).table
    assert list(committed["run_id"]) == list(now["run_id"])
    for column in ("rank", "accuracy", "macro_f1", "n"):
        assert list(committed[column]) == pytest.approx(list(now[column]))
