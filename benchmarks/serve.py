"""`sentiq serve` under load, on the loopback interface only: the server with dynamic batching and with
batching off (one request a pass), at each concurrency, a fixed number of one-text requests within a time
limit: requests/s, texts/s, p50/p95/p99 latency, errors. Then an overload run (ten times the top
concurrency's clients, each resending at once, a small queue): the share answered 503, the latency of
the rest, /health's answers throughout on the service's port and on --health-port, timed from a process of
their own, the server's memory before, at its peak and after, and whether anything was left hanging.

    python benchmarks/serve.py --model tiny                      # the test suite's tiny random Qwen2
    python benchmarks/serve.py --model ~/.cache/sentiq-standin/qwen2.5-coder-0.5b-instruct --requests 200
    python benchmarks/serve.py --random-weights qwen2.5-0.5b --tokenizer DIR --serve-args "--device cuda"
    python benchmarks/serve.py --soak 100000 --concurrency 32 --overload 0 --requests 0   # memory over time

--soak N sends N one-text requests to one server in rounds of --soak-step and samples its resident memory
after each round: the growth after warm-up (the first round) is what a service running for weeks gains.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

TEXTS = [
    "I loved every minute of it",
    "the worst service I have had in years",
    "it arrived on Tuesday",
    "not bad at all, would order again",
    "dull, slow and far too long",
    "the staff were kind and quick",
]


class Connection:
    """One keep-alive HTTP/1.1 connection written by hand: a load generator sharing the server's cores
    should cost far less per request than the server (httpx costs about as much)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        """The status of one request; 0 when the connection failed (it is opened again next time)."""
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            return status
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.close()
            return 0

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def body(i: int) -> bytes:
    return json.dumps({"texts": [TEXTS[i % len(TEXTS)]]}).encode()


def tiny_model(folder: Path) -> str:
    """The test suite's tiny random Qwen2 and tokenizer, saved in `folder`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_model, build_tokenizer
    from transformers import AutoTokenizer

    build_tokenizer(folder)
    build_model(folder, vocab_size=len(AutoTokenizer.from_pretrained(folder)))
    return str(folder)


def random_model(shape: str, tokenizer: str, folder: Path) -> str:
    """The exact Qwen2.5 shape with random weights (speed does not depend on their values), saved in
    `folder` for the server to load: where the hub cannot be reached."""
    from throughput import random_model as build

    lm = build(shape, tokenizer, "cpu", "bfloat16")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return str(folder)


def start(model: str, port: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sentiq", "serve", "--model", model, "--port", str(port), *extra]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(3000):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"the server exited {server.returncode}: run `sentiq serve {' '.join(command[4:])}`")
        time.sleep(0.1)
    raise SystemExit("the server was not ready within 5 minutes")


def stop(server: subprocess.Popen) -> int:
    server.send_signal(signal.SIGTERM)
    return server.wait(60)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(port: int, requests: int, concurrency: int, limit_s: float) -> dict[str, Any]:
    """`requests` one-text requests from `concurrency` clients, or as many as `limit_s` allows."""
    latencies: dict[int, list[float]] = {}
    left = iter(range(requests))
    deadline = time.perf_counter() + limit_s

    async def client() -> None:
        connection = Connection(port)
        for i in left:
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            status = await connection.request("POST", "/v1/classify", body(i))
            latencies.setdefault(status, []).append(time.perf_counter() - sent)
        connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    ok = np.array(latencies.get(200, [np.nan])) * 1000
    answered = sum(map(len, latencies.values()))
    return {
        "concurrency": concurrency,
        "requests": answered,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies.get(200, [])) / seconds, 1),
        "texts_per_s": round(len(latencies.get(200, [])) / seconds, 1),  # one text a request
        "p50_ms": round(float(np.percentile(ok, 50)), 1),
        "p95_ms": round(float(np.percentile(ok, 95)), 1),
        "p99_ms": round(float(np.percentile(ok, 99)), 1),
        "refused_503": len(latencies.get(503, [])),
        "errors": answered - len(latencies.get(200, [])) - len(latencies.get(503, [])),
    }


def probe(ports: dict[str, int], pid: int, stop: Any, results: Any) -> None:
    """/health on each port every 50 ms, and the server's memory, from a process of its own: a probe on
    the load generator's event loop would time that loop's backlog too."""
    connections = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name, port in ports.items()}
    health: dict[str, list[float]] = {name: [] for name in ports}
    memory = [rss_mib(pid)]
    while not stop.is_set():
        for name, connection in connections.items():
            sent = time.perf_counter()
            try:
                connection.request("GET", "/health")
                response = connection.getresponse()
                response.read()
                health[name].append(time.perf_counter() - sent if response.status == 200 else float("inf"))
            except OSError:
                health[name].append(float("inf"))
                connection.close()
        memory.append(rss_mib(pid))
        time.sleep(0.05)
    results.send((health, memory))


def overload(ports: dict[str, int], pid: int, clients: int, limit_s: float) -> dict[str, Any]:
    """`clients` clients each sending its next request as soon as the last is answered, for `limit_s`
    (a refused request comes back at once, so they offer far more than the server answers), /health
    probed meanwhile on the service's port and on --health-port, and the server's memory sampled."""
    context = multiprocessing.get_context("spawn")
    stop, (received, sent) = context.Event(), context.Pipe(duplex=False)
    prober = context.Process(target=probe, args=(ports, pid, stop, sent))
    prober.start()
    result = asyncio.run(load(ports["service"], 10**9, clients, limit_s))
    stop.set()
    health, memory = received.recv()
    prober.join()
    time.sleep(1)
    metrics = httpx.get(f"http://127.0.0.1:{ports['service']}/metrics").text
    queue = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("sentiq_queue_texts "))
    return {
        **result,
        "share_503": round(result["refused_503"] / result["requests"], 3),
        **{
            f"health_on_{name}_port_p50_p99_max_ms": [
                round(float(np.percentile(times, q)) * 1000, 1) for q in (50, 99, 100)
            ]
            for name, times in health.items()
        },
        "health_probes": len(health["service"]),
        "rss_mib_start_peak_end": [round(memory[0]), round(max(memory)), round(rss_mib(pid))],
        "queue_after": queue,
    }


def soak(model: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """--soak requests through one batching server from the top --concurrency's clients, its resident
    memory sampled after every --soak-step of them; bounded by --soak-seconds."""
    clients = max(map(int, args.concurrency.split(",")))
    (port,) = free_ports(1)
    server = start(model, port, "--batching", *extra)
    samples, sent, errors = [rss_mib(server.pid)], 0, 0
    deadline = time.perf_counter() + args.soak_seconds
    try:
        while sent < args.soak and time.perf_counter() < deadline:
            step = min(args.soak_step, args.soak - sent)
            result = asyncio.run(load(port, step, clients, deadline - time.perf_counter()))
            sent, errors = sent + result["requests"], errors + result["errors"] + result["refused_503"]
            samples.append(rss_mib(server.pid))
            print(f"  {sent:>8,} requests  RSS {samples[-1]:7.1f} MiB", file=sys.stderr, flush=True)
    finally:
        exits = stop(server)
    warm = samples[1] if len(samples) > 2 else samples[0]
    return {
        "requests": sent,
        "errors": errors,
        "rss_mib": [round(m, 1) for m in samples],
        "growth_after_warm_up": round(samples[-1] / warm - 1, 4),
        "exit": exits,
    }


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on the loopback interface."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="'tiny' (the test suite's), or any model sentiq serve takes")
    ap.add_argument("--random-weights", choices=("qwen2.5-0.5b", "qwen2.5-1.5b"), help="instead of --model")
    ap.add_argument("--tokenizer", help="the Qwen2.5 tokenizer folder, for --random-weights")
    ap.add_argument("--requests", type=int, default=1000, help="requests per concurrency and mode")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--time-limit", type=float, default=60, help="seconds per concurrency and mode at most")
    ap.add_argument("--overload", type=int, default=10, help="clients, as times the top --concurrency; 0: none")
    ap.add_argument("--overload-seconds", type=float, default=20)
    ap.add_argument("--serve-args", default="--device cpu", help="more options for sentiq serve")
    ap.add_argument("--soak", type=int, default=0, help="requests of the memory run (0: none)")
    ap.add_argument("--soak-step", type=int, default=10_000, help="requests between memory samples")
    ap.add_argument("--soak-seconds", type=float, default=1800, help="the memory run's time limit")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.random_weights and not args.tokenizer:
        ap.error("--random-weights needs --tokenizer DIR")
    with tempfile.TemporaryDirectory(prefix="sentiq-serve-bench-") as scratch:
        if args.random_weights:
            model = random_model(args.random_weights, args.tokenizer, Path(scratch))
        else:
            model = tiny_model(Path(scratch)) if args.model == "tiny" else args.model
        report = run(args, model)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def run(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """Every cell against a server started for it, then the overload run; each printed as it ends."""
    extra = args.serve_args.split()
    rows: list[dict[str, Any]] = []
    for mode, flags in (("batching", ["--batching"]), ("off", ["--no-batching"])) if args.requests else ():
        (port,) = free_ports(1)
        server = start(model, port, *flags, *extra)
        try:
            for c in map(int, args.concurrency.split(",")):
                rows.append({"mode": mode, **asyncio.run(load(port, args.requests, c, args.time_limit))})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            exits = stop(server)
        rows[-1]["exit"] = exits
    report: dict[str, Any] = {"model": args.random_weights or args.model, "cpu": os.cpu_count(), "rows": rows}
    if args.soak:
        report["soak"] = soak(model, args, extra)
        print(json.dumps(report["soak"]), flush=True)
    if args.overload:
        clients = args.overload * max(map(int, args.concurrency.split(",")))
        ports = dict(zip(("service", "probe"), free_ports(2), strict=True))
        flags = ["--queue-texts", "64", "--max-texts", "64", "--health-port", str(ports["probe"])]
        server = start(model, ports["service"], *flags, *extra)
        try:
            result = overload(ports, server.pid, clients, args.overload_seconds)
        finally:
            exits = stop(server)
        report["overload"] = {**result, "exit": exits}
        print(json.dumps(report["overload"]), flush=True)
    return report


if __name__ == "__main__":
    main()
