"""--engine ray on a local two-CPU cluster started in this process: the same predictions as the local
engine, a worker killed mid-run, the run folder of evaluate. Skipped without the ray extra."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from sentiq import ray_backend  # noqa: E402
from sentiq.cli import app  # noqa: E402
from sentiq.errors import OptionError  # noqa: E402
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings  # noqa: E402

runner = CliRunner()
SCALE = RaySettings(engine="ray", workers=2, cpus_per_worker=0.5)
SAMPLING = MethodConfig(method="sampling", samples=2, temperature=1.0, top_k=50, max_new_tokens=3, seed=4)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _texts(n: int = 24) -> pd.DataFrame:
    words = ["great", "dull", "moving", "boring", "fine", "a mess", "delight", "lifeless"]
    return pd.DataFrame({"id": [f"t{i}" for i in range(n)], "text": [f"review {i}: {words[i % 8]}" for i in range(n)]})


class DiesOnce(ray_backend.LabelBatch):
    """A worker whose process is killed (SIGKILL) on its first batch, once per test."""

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        flag = Path(os.environ["SENTIQ_TEST_MARKER"])
        if not flag.exists():
            flag.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_ray_labels_equal_the_local_engine_sampling_included(cluster, tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.classify import classify_on_ray
    from sentiq.evaluation import load_engine
    from sentiq.methods import Classifier

    frame = _texts()
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "labels.parquet"
    settings = ClassifySettings(output=out, keep_columns="text")
    summary = classify_on_ray(tmp_path / "in.parquet", settings, ModelSettings(model=str(tiny_model)), SAMPLING, SCALE)
    assert summary.texts == 24
    got = pd.read_parquet(out).set_index("id")  # a folder of files, one per block
    assert sorted(got.index) == sorted(frame["id"]) and got.index.is_unique
    local = Classifier(load_engine(ModelSettings(model=str(tiny_model))), SAMPLING).predict(list(frame["text"]))
    for text_id, p in zip(frame["id"], local):
        assert (got.loc[text_id, "label"], got.loc[text_id, "answer"]) == (p.label, p.answer)


def test_a_killed_worker_is_restarted_and_every_id_comes_back_once(
    cluster, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "killed"
    frame = _texts(16)
    ds = ray.data.from_pandas(frame)
    monkeypatch.setattr(ray_backend, "LabelBatch", DiesOnce)
    runtime = {"env_vars": {"SENTIQ_TEST_MARKER": str(marker)}}
    labelled = ray_backend.label(ds, ModelSettings(model=str(tiny_model)), MethodConfig(), SCALE, runtime_env=runtime)
    got = ray_backend.run(lambda: labelled.to_pandas())
    assert marker.exists()  # a worker did die
    assert sorted(got["id"]) == sorted(frame["id"]) and got["id"].is_unique


def test_evaluate_on_ray_writes_the_same_run_folder(
    cluster, tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    local = runner.invoke(app, evaluate_args(tiny_model, labelled_csv, tmp_path, "local", 8, "--seed", "2"))
    assert local.exit_code == 0, local.output
    scale = ["--engine", "ray", "--workers", "2", "--cpus-per-worker", "0.5"]
    on_ray = runner.invoke(app, evaluate_args(tiny_model, labelled_csv, tmp_path, "ray", 8, "--seed", "2", *scale))
    assert on_ray.exit_code == 0, on_ray.output
    config = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert config["status"] == "complete" and config["engine"]["name"] == "ray" and config["engine"]["workers"] == 2
    a, b = (pd.read_csv(tmp_path / r / "predictions.csv", dtype={"id": str}) for r in ("local", "ray"))
    pd.testing.assert_frame_equal(a[["id", "gold", "predicted"]], b[["id", "gold", "predicted"]])
    assert (a["p_positive"] - b["p_positive"]).abs().max() < 1e-4
    listed = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"])
    assert {r["run_id"] for r in json.loads(listed.stdout)["runs"]} == {"local", "ray"}


def test_a_pool_that_takes_every_cpu_is_refused(cluster) -> None:
    with pytest.raises(OptionError, match="take every CPU of the Ray cluster"):
        ray_backend.connect(RaySettings(engine="ray", workers=2, cpus_per_worker=1))


def test_an_unreachable_cluster_is_one_line_in_seconds(tiny_model: Path, tmp_path: Path) -> None:
    import subprocess

    pd.DataFrame({"id": ["a"], "text": ["good"]}).to_parquet(tmp_path / "in.parquet")
    args = ["classify", "-i", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet"), "--engine", "ray"]
    args += ["--ray-address", "127.0.0.1:9", "--model", str(tiny_model)]  # nothing listens on port 9
    out = subprocess.run([sys.executable, "-m", "sentiq", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:9")
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_worker_that_cannot_load_the_model_is_one_line(cluster, tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    pd.DataFrame({"id": ["a", "b"], "text": ["good", "bad"]}).to_parquet(tmp_path / "in.parquet")
    args = ["classify", "-i", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet"), "--engine", "ray"]
    result = runner.invoke(app, [*args, "--workers", "2", "--cpus-per-worker", "0.5", "--model", str(broken)])
    # Ray prints its own notices ("(raylet) ...", "(MapWorker pid=...) ...", blank lines) at any moment,
    # even after sentiq's verdict; of sentiq's own lines, the verdict is the one at the end
    assert result.exit_code == 1
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in result.output.splitlines()]
    own = [line for line in plain if line and not line.startswith("(")]
    assert own[-1].startswith("error: a Ray worker failed: cannot load model")


@pytest.mark.parametrize("mode", ["batch", "domain"])
def test_priors_from_texts_are_refused_on_ray(mode: str) -> None:
    from sentiq import ray_backend
    from sentiq.errors import OptionError
    from sentiq.settings import MethodConfig, ModelSettings, RaySettings

    with pytest.raises(OptionError, match=f"--calibrate {mode} estimates its prior"):
        ray_backend.label(None, ModelSettings(), MethodConfig(calibrate=mode), RaySettings(engine="ray"))
