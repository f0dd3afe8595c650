"""--backend ray on a local two-CPU cluster started in this process: the same predictions as the local
engine, a worker killed mid-run, the run folder of evaluate. Skipped without the ray extra."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from sentiq.backends import ray as ray_backend  # noqa: E402
from sentiq.backends import ray_cluster  # noqa: E402
from sentiq.cli import app  # noqa: E402
from sentiq.errors import DataError, OptionError  # noqa: E402
from sentiq.methods.plan import plan_method  # noqa: E402
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings  # noqa: E402

runner = CliRunner()
SCALE = RaySettings(backend="ray", workers=2, cpus_per_worker=0.5)
SAMPLING = MethodConfig(method="sampling", samples=2, temperature=1.0, top_k=50, max_new_tokens=3, seed=4)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _ray_summary(*args: Any) -> Any:
    """classify_on_ray's stream run to its end: its summary."""
    from sentiq.workflows.classify import classify_on_ray

    with classify_on_ray(*args) as stream:
        for _ in stream:
            pass
    return stream.summary


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
    from sentiq.core.engine import load_engine
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner

    frame = _texts()
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "labels.parquet"
    settings = ClassifySettings(output=out, keep_columns="text")
    summary = _ray_summary(tmp_path / "in.parquet", settings, ModelSettings(model=str(tiny_model)), SAMPLING, SCALE)
    assert summary.texts == 24
    got = pd.read_parquet(out).set_index("id")  # a folder of files, one per block
    assert sorted(got.index) == sorted(frame["id"]) and got.index.is_unique
    local = make_runner(load_engine(ModelSettings(model=str(tiny_model))), plan_method(SAMPLING)).predict(
        list(frame["text"])
    )
    for text_id, p in zip(frame["id"], local):
        assert (got.loc[text_id, "label"], got.loc[text_id, "answer"]) == (p.label, p.answer)
    frame.head(5).to_parquet(tmp_path / "in.parquet")  # a smaller input, labelled over the first run's folder
    again = ClassifySettings(output=out, keep_columns="text", overwrite=True)
    assert (
        _ray_summary(tmp_path / "in.parquet", again, ModelSettings(model=str(tiny_model)), SAMPLING, SCALE).texts == 5
    )
    assert sorted(pd.read_parquet(out)["id"]) == sorted(frame["id"].head(5))  # replaced, not appended to


def test_a_killed_worker_is_restarted_and_every_id_comes_back_once(
    cluster, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "killed"
    frame = _texts(16)
    ds = ray.data.from_pandas(frame)
    monkeypatch.setattr(ray_backend, "LabelBatch", DiesOnce)
    runtime = {"env_vars": {"SENTIQ_TEST_MARKER": str(marker)}}
    labelled = ray_backend.label(
        ds, ModelSettings(model=str(tiny_model)), plan_method(MethodConfig()), SCALE, runtime_env=runtime
    )
    got = ray_backend.run(lambda: labelled.to_pandas())
    assert marker.exists()  # a worker did die
    assert sorted(got["id"]) == sorted(frame["id"]) and got["id"].is_unique


def test_evaluate_on_ray_writes_the_same_run_folder(
    cluster, tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    local = runner.invoke(app, evaluate_args(tiny_model, labelled_csv, tmp_path, "local", 8, "--seed", "2"))
    assert local.exit_code == 0, local.output
    scale = ["--backend", "ray", "--workers", "2", "--cpus-per-worker", "0.5"]
    on_ray = runner.invoke(app, evaluate_args(tiny_model, labelled_csv, tmp_path, "ray", 8, "--seed", "2", *scale))
    assert on_ray.exit_code == 0, on_ray.output
    config = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert config["status"] == "complete" and config["engine"]["name"] == "ray" and config["engine"]["workers"] == 2
    a, b = (pd.read_csv(tmp_path / r / "predictions.csv", dtype={"id": str}) for r in ("local", "ray"))
    pd.testing.assert_frame_equal(a[["id", "gold", "predicted"]], b[["id", "gold", "predicted"]])
    assert (a["p_positive"] - b["p_positive"]).abs().max() < 1e-4
    listed = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"])
    assert {r["run_id"] for r in json.loads(listed.stdout)["runs"]} == {"local", "ray"}


@pytest.mark.parametrize(
    "scale,fragment",
    [
        (dict(workers=2, cpus_per_worker=1), "2 workers of 1 CPU each, and 1 CPU to read the data, do not fit"),
        (dict(workers=64, cpus_per_worker=1), "it has 2 free CPUs and 0 free GPUs on 1 node, room for 1 such worker;"),
        (dict(workers=1, cpus_per_worker=0.5, gpus_per_worker=1), "0 free GPUs on 1 node, room for 0 such workers"),
    ],
)
def test_a_pool_the_cluster_cannot_place_is_refused_at_once(cluster, scale: dict, fragment: str) -> None:
    import time

    start = time.monotonic()
    with pytest.raises(OptionError, match=re.escape(fragment)):
        ray_cluster.connect(RaySettings(backend="ray", **scale))
    assert time.monotonic() - start < 10


def test_an_output_folder_that_holds_files_or_the_input_is_refused_before_the_cluster(
    tiny_model: Path, tmp_path: Path
) -> None:

    out = tmp_path / "labels.parquet"
    out.mkdir()
    (out / "earlier.parquet").write_bytes(b"an earlier run")
    pd.DataFrame({"id": ["a"], "text": ["good"]}).to_parquet(tmp_path / "in.parquet")
    model, scale = ModelSettings(model=str(tiny_model)), RaySettings(backend="ray", ray_address="127.0.0.1:9")
    with pytest.raises(DataError, match=re.escape(f"{out} already holds labels: add --overwrite to replace them")):
        _ray_summary(tmp_path / "in.parquet", ClassifySettings(output=out), model, MethodConfig(), scale)
    (out / "in.parquet").write_bytes((tmp_path / "in.parquet").read_bytes())
    inside = ClassifySettings(output=out, overwrite=True)
    with pytest.raises(OptionError, match="would overwrite the input"):
        _ray_summary(out / "in.parquet", inside, model, MethodConfig(), scale)
    assert sorted(p.name for p in out.iterdir()) == ["earlier.parquet", "in.parquet"]
    assert (out / "earlier.parquet").read_bytes() == b"an earlier run"


def test_grow_timeout_takes_no_negative_seconds(tiny_model: Path) -> None:
    result = runner.invoke(app, ["classify", "good", "--engine", "ray", "--grow-timeout", "-1"])  # its old name
    assert result.exit_code == 2 and "--grow-timeout" in result.output


def test_a_local_cluster_has_this_machines_cores_and_refuses_more_workers(tiny_model: Path, tmp_path: Path) -> None:
    import subprocess
    import time

    pd.DataFrame({"id": ["a"], "text": ["good"]}).to_parquet(tmp_path / "in.parquet")
    args = ["classify", "-i", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet"), "--backend", "ray"]
    start = time.monotonic()
    command = [sys.executable, "-m", "sentiq", *args, "--workers", "64", "--model", str(tiny_model)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    cpus = (os.cpu_count() or 1) + 1
    assert out.returncode == 1 and time.monotonic() - start < 60
    assert out.stderr.strip() == (
        "error: 64 workers of 1 CPU each, and 1 CPU to read the data, do not fit the Ray cluster at local: "
        f"it has {cpus} free CPUs and 0 free GPUs on 1 node, room for {cpus - 1} such workers; use fewer "
        "--workers or smaller --cpus-per-worker/--gpus-per-worker"
    )


def test_an_autoscaling_cluster_is_waited_for_then_given_up_on(
    cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ray.autoscaler.sdk

    asked: list[list[dict]] = []
    monkeypatch.setattr(ray_cluster, "_can_grow", lambda: True)
    monkeypatch.setattr(ray.autoscaler.sdk, "request_resources", lambda bundles: asked.append(bundles))
    monkeypatch.setattr(ray_cluster, "GROW_POLL_S", 0.01)
    scale = RaySettings(backend="ray", workers=3, cpus_per_worker=1, grow_timeout=0.2)
    with pytest.raises(OptionError, match=r"room for 1 such worker; .* \(after waiting 0.2s for the cluster to grow\)"):
        ray_cluster.connect(scale)
    assert asked == [[{"CPU": 1}] * 3 + [{"CPU": 1}]]
    assert "has room for 1 of 3 workers now" in caplog.text and "waiting up to 0.2s for it to grow" in caplog.text
    rooms = iter([(1, "small"), (2, "growing"), (3, "grown")])
    monkeypatch.setattr(ray_cluster, "_room", lambda settings: next(rooms))
    ray_cluster.connect(replace(scale, grow_timeout=30))  # room appears before the timeout
    assert next(rooms, None) is None


def test_an_unreachable_cluster_is_one_line_in_seconds(tiny_model: Path, tmp_path: Path) -> None:
    import subprocess

    pd.DataFrame({"id": ["a"], "text": ["good"]}).to_parquet(tmp_path / "in.parquet")
    args = ["classify", "-i", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet"), "--backend", "ray"]
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
    args = ["classify", "-i", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet"), "--backend", "ray"]
    result = runner.invoke(app, [*args, "--workers", "2", "--cpus-per-worker", "0.5", "--model", str(broken)])
    # Ray prints its own notices ("(raylet) ...", "(MapWorker pid=...) ...", blank lines) at any moment,
    # even after sentiq's verdict; of sentiq's own lines, the verdict is the one at the end
    assert result.exit_code == 1
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in result.output.splitlines()]
    own = [line for line in plain if line and not line.startswith("(")]
    assert own[-1].startswith("error: a Ray worker failed: cannot load model")


@pytest.mark.parametrize("mode", ["batch", "domain"])
def test_priors_from_texts_are_refused_on_ray(mode: str) -> None:
    from sentiq.backends import ray as ray_backend
    from sentiq.errors import OptionError
    from sentiq.settings import MethodConfig, ModelSettings, RaySettings

    with pytest.raises(OptionError, match=f"--calibrate {mode} estimates its prior"):
        ray_backend.label(None, ModelSettings(), plan_method(MethodConfig(calibrate=mode)), RaySettings(backend="ray"))


@pytest.fixture(scope="module")
def separate_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A cluster started by `ray start --head` as a process of its own, in a home whose ~/.ray/auth_token
    makes it ask for that token (as `ray start` does wherever a token exists), with its own temp dir; it
    is stopped by ending that process, never with `ray stop` (which ends every Ray process here)."""
    import secrets
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="sq", dir="/tmp")  # short: Ray's socket paths have a length limit
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(temp) / "start.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home), "HF_HUB_OFFLINE": "1"}
    head = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}"]
    head += [f"--temp-dir={temp}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    with open(log, "w") as out:
        proc = subprocess.Popen(head, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:  # SIGTERM to its own process group: `ray start` and the processes it started, no others
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)  # its graceful stop can take half a minute: the tests need not wait for it
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _classify_on(address: str, env: dict[str, str], model: Path, folder: Path, name: str):
    import subprocess

    pd.DataFrame({"id": ["a", "b", "c"], "text": ["good", "bad", "fine"]}).to_parquet(folder / "in.parquet")
    args = ["classify", "-i", str(folder / "in.parquet"), "--output", str(folder / name), "--backend", "ray"]
    args += ["--ray-address", address, "--workers", "1", "--cpus-per-worker", "0.5", "--model", str(model)]
    command = [sys.executable, "-m", "sentiq", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_a_cluster_started_with_ray_start_is_joined_with_its_token(
    separate_cluster, tiny_model: Path, tmp_path: Path
) -> None:
    address, env = separate_cluster
    done = _classify_on(address, env, tiny_model, tmp_path, "labels.parquet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(pd.read_parquet(tmp_path / "labels.parquet")["id"]) == ["a", "b", "c"]


def test_a_refused_token_is_one_line_that_says_what_to_do(separate_cluster, tiny_model: Path, tmp_path: Path) -> None:
    address, env = separate_cluster
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".ray").mkdir(parents=True)
    (elsewhere / ".ray" / "auth_token").write_text("0" * 64)  # another cluster's token
    refused = _classify_on(address, {**env, "HOME": str(elsewhere)}, tiny_model, tmp_path, "labels.parquet")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: the Ray cluster at {address} asks for an authentication token, and the one in "
        "~/.ray/auth_token is not this cluster's: put the cluster's token (ray get-auth-token on its head node) "
        "there (or in RAY_AUTH_TOKEN)"
    )
    assert not (tmp_path / "labels.parquet").exists()


def test_actors_of_an_earlier_job_are_given_time_to_free_their_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    rooms = iter([(0, "busy"), (0, "busy"), (2, "free")])
    monkeypatch.setattr(ray_cluster, "_room", lambda settings: next(rooms))
    monkeypatch.setattr(ray_cluster, "_fits_when_idle", lambda settings: True)
    ray_cluster._require_room(RaySettings(backend="ray", workers=2), "local", release=5.0)  # no refusal
    monkeypatch.setattr(ray_cluster, "_room", lambda settings: (0, "busy"))
    monkeypatch.setattr(ray_cluster, "_fits_when_idle", lambda settings: False)
    monkeypatch.setattr(ray_cluster, "_can_grow", lambda: False)
    with pytest.raises(OptionError, match="do not fit"):  # a pool too big for the idle cluster: at once
        ray_cluster._require_room(RaySettings(backend="ray", workers=2), "local", release=60.0)


def test_ray_writes_every_label_s_probability_for_a_three_way_prompt(cluster, tiny_model: Path, tmp_path: Path) -> None:

    prompt = tmp_path / "three.toml"
    prompt.write_text('user = "{text}"\n[labels]\nnegative = "negative"\nneutral = "neutral"\npositive = "positive"\n')
    _texts(12).to_parquet(tmp_path / "in.parquet")
    method = MethodConfig(prompt=str(prompt))
    out = tmp_path / "labels.parquet"
    settings = ClassifySettings(output=out, keep_columns="")
    assert (
        _ray_summary(tmp_path / "in.parquet", settings, ModelSettings(model=str(tiny_model)), method, SCALE).texts == 12
    )
    got = pd.read_parquet(out)
    assert list(got.columns) == ["id", "label", "p_negative", "p_neutral", "p_positive"]
    assert got[["p_negative", "p_neutral", "p_positive"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert set(got["label"]) <= {"negative", "neutral", "positive"}


def test_a_local_csv_is_read_strictly_before_ray_reads_it(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,text\n1,fine\n", encoding="utf-8")
    (folder / "b.csv").write_text("id,text\n2,Great blender, very quiet.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"b.csv line 2: 3 fields where the header has 2"):
        ray_backend.read(str(folder), None, ())


def test_a_folder_of_several_formats_is_said_to_be_mixed(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,text\n1,fine\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "2", "text": "bad"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"holds \.csv and \.jsonl files: --backend ray reads a folder of one format"):
        ray_backend.read(str(tmp_path), None, ())


def test_ray_workers_read_the_fit_inside_the_plan(cluster, tiny_model: Path, tiny_fit, tmp_path: Path) -> None:
    """The fit travels to the workers inside the method's plan: the probe labels as the local engine does."""
    from sentiq.core.engine import load_engine
    from sentiq.methods.runner import make_runner

    frame = _texts(12)
    frame.to_parquet(tmp_path / "in.parquet")
    method = MethodConfig(method="probe", fit=str(tiny_fit.folder))
    settings = ClassifySettings(output=tmp_path / "labels.parquet", keep_columns="")
    model = ModelSettings(model=str(tiny_model))
    assert _ray_summary(tmp_path / "in.parquet", settings, model, method, SCALE).texts == 12
    got = pd.read_parquet(tmp_path / "labels.parquet").set_index("id")
    local = make_runner(load_engine(model), plan_method(method)).predict(list(frame["text"]))
    for text_id, p in zip(frame["id"], local):
        assert got.loc[text_id, "label"] == p.label
        assert got.loc[text_id, "p_positive"] == pytest.approx(p.p_positive, abs=1e-4)  # float32, other batches


@pytest.mark.parametrize("staged", ["exits_fit", "cascade_fit"])
def test_ray_workers_take_the_early_exits_the_local_engine_takes(
    cluster, deep_model: Path, staged: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A fit with early exits, or a cascade across models, labels on Ray as locally: the same label, exit
    and exit model for every text."""
    from sentiq.core.engine import load_engine
    from sentiq.methods.runner import make_runner

    exits_fit = request.getfixturevalue(staged)
    frame = _texts(12)
    frame.to_parquet(tmp_path / "in.parquet")
    method = MethodConfig(method="probe", fit=str(exits_fit.folder))
    settings = ClassifySettings(output=tmp_path / "labels.parquet", keep_columns="")
    model = ModelSettings(model=str(deep_model), dtype="float32")
    assert _ray_summary(tmp_path / "in.parquet", settings, model, method, SCALE).texts == 12
    got = pd.read_parquet(tmp_path / "labels.parquet").set_index("id")
    local = make_runner(load_engine(model), plan_method(method)).predict(list(frame["text"]))
    assert [int(got.loc[i, "exit"]) for i in frame["id"]] == [p.exit for p in local]
    assert [got.loc[i, "label"] for i in frame["id"]] == [p.label for p in local]
    if staged == "cascade_fit":
        assert [got.loc[i, "exit_model"] for i in frame["id"]] == [p.exit_model for p in local]
