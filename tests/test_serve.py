"""`sentiq serve`: answers equal to the library's, requests batched together, every limit and error path
as one JSON error, overload refused at once while /health answers, the API key, and a SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import sentiq  # noqa: E402
from sentiq.serve.app import Service, create_app  # noqa: E402
from sentiq.serve.batcher import Overloaded, RequestBatcher  # noqa: E402
from sentiq.serve.settings import ServeSettings  # noqa: E402

KEY = "k" * 24


@dataclass
class Answer:
    label: str
    scores: dict[str, float] | None
    answer: str | None = None
    truncated: bool = False


class Stub:
    """A classifier stand-in whose passes can be held at a gate: what the service does around a model."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str | None = None) -> None:
        self.gate, self.fail_on, self.calls = gate, fail_on, []
        self.calibration = self.abstention = None
        self.labels = ("positive", "negative")
        self.method = SimpleNamespace(title=lambda: "loglik")
        self.source = SimpleNamespace(label="stub")

    def classify(self, texts: list[str]) -> list[Answer]:
        self.calls.append(list(texts))
        if self.gate is not None and texts != ["warming up"]:
            self.gate.wait(10)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("this text breaks the model")
        return [Answer("positive" if "good" in t else "negative", {"positive": 0.5, "negative": 0.5}) for t in texts]

    def fields(self, texts: list[str], surface: str = "service") -> list[dict[str, Any]]:
        return [asdict(a) for a in self.classify(texts)]


def _client(make: Any, **limits: Any) -> TestClient:
    return TestClient(create_app(make, ServeSettings(**limits)))


def _wait_ready(client: TestClient, headers: dict[str, str] | None = None) -> None:
    for _ in range(600):
        if client.get("/ready", headers=headers or {}).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(client.get("/ready", headers=headers or {}).json())


def test_answers_equal_the_library_s(tiny_model: Path) -> None:
    texts = ["a fine film", "dull and long", "I loved it", "bad"]
    expected = sentiq.load(str(tiny_model), device="cpu", dtype="float32").classify(texts)
    with _client(lambda: sentiq.load(str(tiny_model), device="cpu", dtype="float32")) as client:
        _wait_ready(client)
        got = client.post("/v1/classify", json={"texts": texts})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["labels"] == ["positive", "negative"] and body["method"] == "loglik"
        assert [r["label"] for r in body["results"]] == [r.label for r in expected]
        for mine, theirs in zip(body["results"], expected):
            assert mine["scores"] == pytest.approx(theirs.scores) and mine["answer"] is None
        metrics = client.get("/metrics").text
        assert 'sentiq_requests_total{endpoint="/v1/classify",status="200"} 1.0' in metrics
        assert "sentiq_texts_total 4.0" in metrics


@pytest.mark.parametrize(
    ("options", "labels"),
    [
        ({"method": "zero-shot", "prompt": "three-way"}, ["negative", "neutral", "positive"]),
        ({"method": "sampling", "prompt": "stars", "samples": 3, "temperature": 0.7}, ["1", "2", "3", "4", "5"]),
    ],
)
def test_generating_methods_and_other_label_sets_answer_as_the_library(
    tiny_model: Path, options: dict[str, Any], labels: list[str]
) -> None:
    texts = ["a fine film", "dull and long", "I loved it"]
    make = lambda: sentiq.load(str(tiny_model), device="cpu", dtype="float32", max_new_tokens=4, **options)  # noqa: E731
    expected = make().classify(texts)
    with _client(make) as client:
        _wait_ready(client)
        body = client.post("/v1/classify", json={"texts": texts}).json()
    assert sorted(body["labels"]) == labels and body["method"].startswith(options["method"])
    assert [(r["label"], r["answer"]) for r in body["results"]] == [(r.label, r.answer) for r in expected]
    assert all(r["answer"] is not None for r in body["results"])
    assert [r["scores"] for r in body["results"]] == [r.scores for r in expected]  # votes for sampling, else None


def test_concurrent_requests_join_one_pass(tiny_model: Path) -> None:
    make = lambda: sentiq.load(str(tiny_model), device="cpu", dtype="float32")  # noqa: E731
    with _client(make, max_wait_ms=300) as client:
        _wait_ready(client)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: client.post("/v1/classify", json={"texts": [f"text {i}"]}), range(8)))
        assert all(a.status_code == 200 for a in answers)
        metrics = client.get("/metrics").text
    passes = _sample(metrics, "sentiq_batch_requests_count")
    assert passes < 8 and _sample(metrics, "sentiq_batch_requests_sum") == 8  # requests merged into fewer passes
    assert _sample(metrics, 'sentiq_batch_requests_bucket{le="1.0"}') < passes or passes == 1


def _sample(metrics: str, name: str) -> float:
    (line,) = [m for m in metrics.splitlines() if m.startswith(name + " ")]
    return float(line.split()[-1])


def test_the_batcher_merges_in_order_and_fails_only_the_failing_request() -> None:
    stub = Stub(fail_on="boom")

    async def main() -> list[Any]:
        batcher = RequestBatcher(stub.classify, max_wait_s=0.2)
        jobs = [batcher.submit([f"good {i}", f"x {i}"]) for i in range(3)] + [batcher.submit(["boom"])]
        got = await asyncio.gather(*jobs, return_exceptions=True)
        batcher.stop()
        return got

    *fine, failed = asyncio.run(main())
    assert [[a.label for a in answers] for answers in fine] == [["positive", "negative"]] * 3
    assert isinstance(failed, RuntimeError)
    assert stub.calls[0] == ["good 0", "x 0", "good 1", "x 1", "good 2", "x 2", "boom"]  # one pass, then apart
    assert len(stub.calls) == 1 + 4


def test_without_batching_each_request_is_its_own_pass() -> None:
    stub = Stub()

    async def main() -> None:
        batcher = RequestBatcher(stub.classify, batching=False, max_wait_s=0.2)
        await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(4)))
        batcher.stop()

    asyncio.run(main())
    assert stub.calls == [["t0"], ["t1"], ["t2"], ["t3"]]


def test_a_full_queue_refuses_at_once() -> None:
    gate = threading.Event()

    async def main() -> None:
        batcher = RequestBatcher(Stub(gate).classify, queue_texts=3, max_wait_s=0)
        first = asyncio.ensure_future(batcher.submit(["a"]))  # taken by the pass the gate holds
        await asyncio.sleep(0.1)
        queued = [asyncio.ensure_future(batcher.submit(["b", "c"])), asyncio.ensure_future(batcher.submit(["d"]))]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await batcher.submit(["e"])
        gate.set()
        assert len(await asyncio.gather(first, *queued)) == 3
        batcher.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b'{"texts": ["fine"', 400, "malformed_json"),
        (b'{"texts": ["\xff\xfe"]}', 400, "invalid_utf8"),
        (b'{"texts": "one text"}', 422, "invalid_request"),
        (b'{"texts": [1, 2]}', 422, "invalid_request"),
        (b'{"text": ["a"]}', 422, "invalid_request"),
        (b'{"texts": []}', 422, "invalid_request"),
        (b"[]", 422, "invalid_request"),
        (b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "malformed_json"),  # not a RecursionError
        (b'{"texts": ["bad \\ud800 film"]}', 400, "invalid_text"),  # a lone surrogate: no tokenizer takes it
    ],
)
def test_a_bad_request_is_one_json_error(body: bytes, status: int, kind: str) -> None:
    with _client(Stub) as client:
        _wait_ready(client)
        got = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
        assert got.status_code == status and got.json()["error"]["type"] == kind, got.text
        assert got.json()["error"]["message"]


def test_fields_the_service_does_not_read_are_refused_by_name() -> None:
    with _client(Stub) as client:
        _wait_ready(client)
        body = {"texts": ["fine"], "method": "zero-shot", "prompt": "three-way", "labels": ["a"], "model": "x"}
        got = client.post("/v1/classify", json=body)
        assert got.status_code == 422 and got.json()["error"] == {
            "type": "invalid_request",
            "message": 'unknown fields method, prompt, labels, model: the request takes only texts (send {"texts": ["...", ...]})',
        }


def test_a_lone_surrogate_is_refused_and_the_service_goes_on_in_one_pass() -> None:
    stub = Stub()
    with _client(lambda: stub, max_wait_ms=0) as client:
        _wait_ready(client)
        got = client.post("/v1/classify", content=b'{"texts": ["good", "bad \\udfff film"]}')
        assert got.status_code == 400 and got.json()["error"]["message"].startswith(
            "texts.1: a lone surrogate (\\udfff)"
        )
        assert stub.calls == [["warming up"]]  # refused before any pass
        assert client.post("/v1/classify", json={"texts": ["good"]}).json()["results"][0]["label"] == "positive"


def test_unknown_paths_and_methods_answer_the_documented_error_body() -> None:
    with _client(Stub) as client:
        missing = client.get("/v2/classify")
        assert missing.status_code == 404
        assert missing.json() == {"error": {"type": "not_found", "message": "no endpoint /v2/classify: see /docs"}}
        wrong = client.get("/v1/classify")
        assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"
        assert wrong.json()["error"]["message"] == "/v1/classify does not take GET: see /docs"
        assert wrong.headers["allow"] == "POST"


def test_a_client_that_closes_mid_body_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from starlette.requests import ClientDisconnect

    from sentiq.serve.requests import ApiError, _read

    class Closing:
        headers: dict[str, str] = {}

        async def stream(self) -> Any:
            yield b'{"texts": ["a'
            raise ClientDisconnect

    import logging

    log = logging.getLogger("uvicorn.error")
    log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    try:
        with pytest.raises(ApiError) as refused:
            asyncio.run(_read(Closing(), 1 << 20))  # type: ignore[arg-type]
    finally:
        log.removeHandler(caplog.handler)
    assert refused.value.kind == "client_disconnected"
    lines = {
        id(r): r for r in caplog.records if "closed its connection" in r.getMessage()
    }  # one record, however caught
    assert len(lines) == 1 and next(iter(lines.values())).exc_info is None


def test_every_limit_names_itself_and_its_value() -> None:
    with _client(Stub, max_texts=3, max_chars=10, max_body_bytes=4096) as client:
        _wait_ready(client)
        many = client.post("/v1/classify", json={"texts": ["a"] * 4}).json()["error"]
        assert many["type"] == "too_many_texts" and (many["limit"], many["value"]) == ("max_texts", 3)
        long = client.post("/v1/classify", json={"texts": ["ok", "x" * 11]}).json()["error"]
        assert long["type"] == "text_too_long" and (long["limit"], long["value"]) == ("max_chars", 10)
        assert "texts.1" in long["message"]
        big = client.post("/v1/classify", content=b"x" * (10 * 2**20), headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["limit"] == "max_body_bytes"
        streamed = client.post("/v1/classify", content=iter([b"x" * 3000, b"x" * 3000]))  # no content-length
        assert streamed.status_code == 413
        assert client.post("/v1/classify", json={"texts": ["good"]}).status_code == 200  # still serving


def test_overload_answers_503_while_health_answers_and_then_serves_again() -> None:
    gate = threading.Event()
    stub = Stub(gate)
    with _client(lambda: stub, queue_texts=2, max_texts=2, max_batch_texts=1) as client:
        _wait_ready(client)
        with ThreadPoolExecutor(4) as pool:
            batcher = client.app.state.service.batcher
            held = [pool.submit(client.post, "/v1/classify", json={"texts": ["good"]})]
            _until(lambda: len(stub.calls) == 2)  # the warm-up, then this request's pass, held at the gate
            held += [pool.submit(client.post, "/v1/classify", json={"texts": ["good"]}) for _ in range(2)]
            _until(lambda: batcher.depth == 2)  # two queued behind it: the queue is full
            refused = client.post("/v1/classify", json={"texts": ["good"]})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "overloaded"
            started = time.perf_counter()
            assert client.get("/health").status_code == 200 and time.perf_counter() - started < 0.1
            gate.set()
            assert [f.result().status_code for f in held] == [200, 200, 200]
        assert client.post("/v1/classify", json={"texts": ["good"]}).status_code == 200


def _until(ready: Any) -> None:
    for _ in range(500):
        if ready():
            return
        time.sleep(0.02)
    raise AssertionError("the service did not reach the state the test waits for")


def test_a_request_not_answered_in_time_is_504() -> None:
    gate = threading.Event()
    with _client(lambda: Stub(gate), timeout_s=0.2) as client:
        _wait_ready(client)
        late = client.post("/v1/classify", json={"texts": ["good"]})
        gate.set()
        assert late.status_code == 504 and late.json()["error"] | {"message": ""} == {
            "type": "timeout",
            "message": "",
            "limit": "timeout_s",
            "value": 0.2,
        }


def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    import uvicorn

    port = _free_port()
    service = Service(ServeSettings(timeout_s=0.3))
    server = uvicorn.Server(uvicorn.Config(create_app(Stub, service.settings, service), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _until(lambda: server.started and service.state == "ready")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            head = (
                "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n"
            )
            client.sendall(head.encode() + b'{"texts": ')  # and the rest never comes
            answer = b""
            while chunk := client.recv(65536):  # read until the server closes the connection
                answer += chunk
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 408 Request Timeout" and b'"type":"body_timeout"' in rest
    finally:
        server.should_exit = True
        thread.join(10)


def test_not_ready_while_loading_and_a_failed_load_says_why() -> None:
    loaded = threading.Event()

    def slow() -> Stub:
        loaded.wait(10)
        return Stub()

    with _client(slow) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": False, "state": "loading"}
        waiting = client.post("/v1/classify", json={"texts": ["good"]})
        assert waiting.status_code == 503 and waiting.json()["error"]["type"] == "not_ready"
        loaded.set()
        _wait_ready(client)

    def broken() -> Stub:
        raise sentiq.ModelError("model 'nope' not found")

    service = Service(ServeSettings())
    with TestClient(create_app(broken, ServeSettings(), service)) as client:
        for _ in range(100):
            if service.state == "failed":
                break
            time.sleep(0.02)
        assert client.get("/ready").json()["error"] == "model 'nope' not found"


def test_the_api_key_guards_every_endpoint_but_health() -> None:
    with _client(Stub, api_key=KEY) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        _wait_ready(client, auth)
        assert client.get("/health").status_code == 200
        for path in ("/ready", "/metrics", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 401, path
        denied = client.post("/v1/classify", json={"texts": ["good"]}, headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/classify", json={"texts": ["good"]}, headers=auth).status_code == 200
        assert client.get("/openapi.json", headers=auth).json()["paths"]["/v1/classify"]["post"]["requestBody"]


def test_settings_the_service_cannot_honour_are_refused() -> None:
    with pytest.raises(sentiq.OptionError, match="--api-key must be at least 16"):
        ServeSettings(api_key="short")
    with pytest.raises(sentiq.OptionError, match="--queue-texts must hold"):
        ServeSettings(queue_texts=10, max_texts=20)
    with pytest.raises(sentiq.OptionError, match="--health-port must differ"):
        ServeSettings(port=8000, health_port=8000)
    for key in ("clé-secrète-très-longue", "a key with spaces inside"):
        with pytest.raises(sentiq.OptionError, match="--api-key must be printable ASCII without spaces"):
            ServeSettings(api_key=key)
    from sentiq.serve import serve
    from sentiq.settings import MethodConfig, ModelSettings

    with pytest.raises(sentiq.OptionError, match="--calibrate batch estimates its prior .* --calibration-texts"):
        serve(ModelSettings("x"), MethodConfig(calibrate="batch"), ServeSettings())


def test_calibration_texts_are_read_before_the_model_loads(tmp_path: Path) -> None:
    from sentiq.serve import _warm_up_texts
    from sentiq.settings import MethodConfig

    (tmp_path / "calib.txt").write_text("a fine film\n\nbad\n")
    batch, domain = MethodConfig(calibrate="batch"), MethodConfig(calibrate="domain")
    assert _warm_up_texts(batch, ServeSettings(calibration_texts=tmp_path / "calib.txt")) == ["a fine film", "bad"]
    assert _warm_up_texts(MethodConfig(), ServeSettings()) == ["warming up"]
    with pytest.raises(sentiq.OptionError, match="--text-column names the column of --calibration-texts"):
        _warm_up_texts(MethodConfig(), ServeSettings(text_column="review"))
    (tmp_path / "calib.csv").write_text("id,review\n1,a fine film\n2,bad\n")
    csv = ServeSettings(calibration_texts=tmp_path / "calib.csv", text_column="review")
    assert _warm_up_texts(batch, csv) == ["a fine film", "bad"]
    with pytest.raises(sentiq.DataError, match="no column 'text'; columns are: id, review"):
        _warm_up_texts(batch, ServeSettings(calibration_texts=tmp_path / "calib.csv"))
    with pytest.raises(sentiq.DataError, match="file not found"):
        _warm_up_texts(domain, ServeSettings(calibration_texts=tmp_path / "none.txt"))
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(sentiq.OptionError, match="no text to estimate the prior on"):
        _warm_up_texts(domain, ServeSettings(calibration_texts=tmp_path / "blank.txt"))
    with pytest.raises(sentiq.OptionError, match="--calibration-texts is for --calibrate batch or domain"):
        _warm_up_texts(MethodConfig(calibrate="contextual"), ServeSettings(calibration_texts=tmp_path / "calib.txt"))


def test_a_batch_prior_is_estimated_on_the_calibration_texts_and_kept(tiny_model: Path) -> None:
    sample = ["a fine film", "dull and long", "I loved it", "bad", "it was fine", "never again"]
    texts = ["what a day", "so slow"]
    library = sentiq.load(str(tiny_model), device="cpu", dtype="float32", calibrate="batch")
    library.classify(sample)  # the prior: these texts' mean
    expected = library.classify(texts)
    make = lambda: sentiq.load(str(tiny_model), device="cpu", dtype="float32", calibrate="batch")  # noqa: E731
    service = Service(ServeSettings(), warm_up=sample)
    with TestClient(create_app(make, service.settings, service)) as client:
        _wait_ready(client)
        calibration = client.get("/ready").json()["calibration"]
        assert calibration["mode"] == "batch" and calibration["estimated_on"] == "the first 6 texts classified"
        assert calibration["prior"] == pytest.approx(library.calibration.prior)
        for _ in range(2):  # the same answers each time: the prior is not re-estimated on requests
            got = client.post("/v1/classify", json={"texts": texts}).json()["results"]
            assert [r["scores"] for r in got] == [pytest.approx(r.scores) for r in expected]


def _free_port(n: int = 1) -> Any:
    """A free loopback port, or a list of `n` distinct ones."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports[0] if n == 1 else ports


def test_the_probe_port_answers_health_and_ready_on_threads_of_its_own() -> None:
    import httpx

    from sentiq.serve.probes import ProbeServer

    service = Service(ServeSettings(api_key=KEY))
    auth = {"Authorization": f"Bearer {KEY}"}
    with ProbeServer(service, "127.0.0.1", 0) as probes, httpx.Client(base_url=f"http://127.0.0.1:{probes.port}") as c:
        assert c.get("/health").json() == {"status": "ok"}  # no key asked for
        assert c.get("/ready").status_code == 401
        assert c.get("/ready", headers=auth).json() == {"ready": False, "state": "loading"}
        service.classifier, service.state = Stub(), "ready"
        ready = c.get("/ready", headers=auth)
        assert ready.status_code == 200 and ready.json()["model"] == "stub"
        assert c.get("/v1/classify", headers=auth).status_code == 404  # probes only: no work on this port
        with pytest.raises(sentiq.OptionError, match=f"--health-port {probes.port}: cannot listen"):
            ProbeServer(service, "127.0.0.1", probes.port)
    with pytest.raises(httpx.TransportError):  # closed with the service
        httpx.get(f"http://127.0.0.1:{probes.port}/health")


def test_sigterm_finishes_what_is_in_flight_then_exits_0(tiny_model: Path) -> None:
    import httpx

    port, probes = _free_port(2)
    command = [sys.executable, "-m", "sentiq", "serve", "--model", str(tiny_model), "--device", "cpu"]
    command += ["--dtype", "float32", "--port", str(port), "--max-wait-ms", "1500", "--health-port", str(probes)]
    command += ["--access-log"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{probes}/ready").json()["ready"] is True
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/classify", json={"texts": ["a fine film"]}, timeout=30)
            time.sleep(0.5)  # the request waits in the batcher for more to join it
            os.kill(server.pid, signal.SIGTERM)
            answered = pending.result()
        assert answered.status_code == 200 and answered.json()["results"][0]["label"] in ("positive", "negative")
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
    output = server.stdout.read() if server.stdout else ""
    assert "Traceback" not in output, output
    assert '"POST /v1/classify HTTP/1.1" 200' in output  # --access-log: a line per request
    assert "Ready: <sentiq.Classifier " in output and "loaded and warm in" in output


def test_a_stop_signal_turns_ready_false_at_once() -> None:
    import uvicorn

    from sentiq.serve import _draining_server

    service = Service(ServeSettings())
    service.state = "ready"
    server = _draining_server()(uvicorn.Config(create_app(Stub, ServeSettings(), service)), service)
    server.handle_exit(signal.SIGTERM, None)
    assert service.state == "draining" and server.should_exit


def test_a_lone_request_does_not_wait_for_others() -> None:
    async def main() -> float:
        batcher = RequestBatcher(Stub().classify, max_wait_s=30, arriving=lambda: 0)
        began = time.perf_counter()
        await batcher.submit(["good"])
        batcher.stop()
        return time.perf_counter() - began

    assert asyncio.run(main()) < 10  # not the 30 s a pass may wait while others are arriving


def test_the_command_ends_in_one_line_on_a_model_that_does_not_load(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "sentiq",
        "serve",
        "--model",
        str(tmp_path / "no-model"),
        "--port",
        str(_free_port()),
    ]
    ended = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ended.returncode == 1 and ended.stderr.strip().splitlines() == [
        f"error: model not found: '{tmp_path / 'no-model'}' is neither an alias, a hub id nor an existing path. "
        "Use 0.5b, 1.5b, a hub id (owner/name) or a local folder."
    ]  # before the server says it runs
    short = subprocess.run([*command[:4], "--api-key", "short"], capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and "--api-key must be at least 16" in short.stderr
    missing = [*command[:4], "--calibrate", "domain", "--calibration-texts", str(tmp_path / "none.txt")]
    unread = subprocess.run(missing, capture_output=True, text=True, timeout=60)
    assert unread.returncode == 1 and unread.stderr.strip().splitlines() == [
        f"error: file not found: {tmp_path}/none.txt"
    ]


def test_an_address_that_cannot_be_listened_on_is_one_line(tiny_model: Path) -> None:
    from sentiq.serve import serve
    from sentiq.settings import MethodConfig, ModelSettings

    model = ModelSettings(str(tiny_model), "cpu", "float32")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(sentiq.OptionError, match=f"--port {port}: cannot listen on 127.0.0.1:{port} \\(Address"):
            serve(model, MethodConfig(), ServeSettings(host="127.0.0.1", port=port))
    with pytest.raises(sentiq.OptionError, match="--host 256.0.0.1: not an address to listen on"):
        serve(model, MethodConfig(), ServeSettings(host="256.0.0.1", port=_free_port()))
    command = [sys.executable, "-m", "sentiq", "serve", "--model", str(tiny_model), "--host", "256.0.0.1"]
    ended = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ended.returncode == 1 and len(ended.stderr.strip().splitlines()) == 1, ended.stderr


def test_a_probe_answers_as_the_library(tiny_model: Path, tiny_fit) -> None:
    texts = ["an absolute delight, I loved it 7", "a dull boring mess of a movie 8"]
    make = lambda: sentiq.load(str(tiny_model), method="probe", fit=str(tiny_fit.folder), device="cpu")  # noqa: E731
    expected = make().classify(texts)
    with _client(make) as client:
        _wait_ready(client)
        body = client.post("/v1/classify", json={"texts": texts}).json()
    assert body["method"] == "probe" and [r["label"] for r in body["results"]] == ["positive", "negative"]
    assert [r["scores"] for r in body["results"]] == pytest.approx([r.scores for r in expected])
