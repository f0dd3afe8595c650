"""`sentiq serve` under load, on the loopback interface only: the server with dynamic batching and with
batching off (one request a pass), at each concurrency, a fixed number of one-text requests within a time
limit: requests/s, texts/s, p50/p95/p99 latency, errors. Then an overload run (many more clients than the
server can answer, a small queue): the share answered 503, the latency of the rest, /health's slowest
answer throughout, the server's memory before, at its peak and after, and whether anything was left
hanging.

    python benchmarks/serve.py --model tiny                      # the test suite's tiny random Qwen2
    python benchmarks/serve.py --model ~/.cache/sentiq-standin/qwen2.5-coder-0.5b-instruct --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


def tiny_model() -> str:
    """The test suite's tiny random Qwen2 and tokenizer, built once in a temporary folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_model, build_tokenizer
    from transformers import AutoTokenizer

    folder = Path(tempfile.mkdtemp(prefix="sentiq-tiny-"))
    build_tokenizer(folder)
    build_model(folder, vocab_size=len(AutoTokenizer.from_pretrained(folder)))
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


async def load(url: str, requests: int, concurrency: int, limit_s: float) -> dict[str, Any]:
    """`requests` one-text requests from `concurrency` clients, or as many as `limit_s` allows."""
    latencies: dict[int, list[float]] = {}
    left = iter(range(requests))
    deadline = time.perf_counter() + limit_s

    async def client(http: httpx.AsyncClient) -> None:
        for i in left:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            try:
                status = (await http.post(f"{url}/v1/classify", json={"texts": [TEXTS[i % len(TEXTS)]]})).status_code
            except httpx.HTTPError:
                status = 0
            latencies.setdefault(status, []).append(time.perf_counter() - sent)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
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


async def overload(url: str, pid: int, clients: int, limit_s: float) -> dict[str, Any]:
    """Many more clients than the server answers, for `limit_s`: /health probed every 50 ms meanwhile,
    the server's memory sampled."""
    health: list[float] = []
    memory = [rss_mib(pid)]
    done = asyncio.Event()

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while not done.is_set():
                sent = time.perf_counter()
                await http.get(f"{url}/health")
                health.append(time.perf_counter() - sent)
                memory.append(rss_mib(pid))
                await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe())
    result = await load(url, 10**9, clients, limit_s)
    done.set()
    await prober
    await asyncio.sleep(1)
    metrics = httpx.get(f"{url}/metrics").text
    queue = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("sentiq_queue_texts "))
    answered = result["requests"]
    return {
        **result,
        "share_503": round(result["refused_503"] / answered, 3) if answered else None,
        "health_max_ms": round(max(health) * 1000, 1),
        "rss_mib_start_peak_end": [round(memory[0]), round(max(memory)), round(rss_mib(pid))],
        "queue_after": queue,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="'tiny' (the test suite's), or any model sentiq serve takes")
    ap.add_argument("--requests", type=int, default=1000, help="requests per concurrency and mode")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--time-limit", type=float, default=60, help="seconds per concurrency and mode at most")
    ap.add_argument("--overload-clients", type=int, default=320, help="0: no overload run")
    ap.add_argument("--overload-seconds", type=float, default=20)
    ap.add_argument("--serve-args", default="--device cpu", help="more options for sentiq serve")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    model = tiny_model() if args.model == "tiny" else args.model
    extra = args.serve_args.split()
    rows: list[dict[str, Any]] = []
    for mode, flags in (("batching", ["--batching"]), ("off", ["--no-batching"])):
        port = free_port()
        server = start(model, port, *flags, *extra)
        for c in map(int, args.concurrency.split(",")):
            rows.append(
                {"mode": mode, **asyncio.run(load(f"http://127.0.0.1:{port}", args.requests, c, args.time_limit))}
            )
            print(json.dumps(rows[-1]), flush=True)
        rows[-1]["exit"] = stop(server)
    report: dict[str, Any] = {"model": args.model, "cpu": os.cpu_count(), "rows": rows}
    if args.overload_clients:
        port = free_port()
        server = start(model, port, "--queue-texts", "256", *extra)
        url = f"http://127.0.0.1:{port}"
        report["overload"] = asyncio.run(overload(url, server.pid, args.overload_clients, args.overload_seconds))
        report["overload"]["exit"] = stop(server)
        print(json.dumps(report["overload"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
