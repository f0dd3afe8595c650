"""Peak resident memory of `sentiq classify --input --output` against the input's size.

    python benchmarks/memory.py [--sizes 1000,20000] [--chunk-size 10000] [--model PATH] [--dtype auto]

Each size runs in its own process (`python -m sentiq classify`), its peak RSS read from the kernel
(wait4); texts are 1,000 embedded-sample reviews repeated to the size, as parquet in and parquet out. Without
--model a tiny random Qwen2 (as the tests build) keeps the model's own memory out of the comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def tiny_model(folder: Path) -> Path:
    from conftest import build_model, build_tokenizer
    from transformers import AutoTokenizer

    build_tokenizer(folder)
    build_model(folder, vocab_size=len(AutoTokenizer.from_pretrained(folder)))
    return folder


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak resident MiB, seconds) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,20000")
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--model", help="a model folder [default: a tiny random Qwen2]")
    ap.add_argument("--method", default="loglik")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    from sentiq.io.datasets import embedded_frame

    # The same 1,000 reviews repeated: every size holds the same longest text, whose forward pass sets
    # the peak of any run, so what differs between sizes is what grows with the input alone.
    texts = list(embedded_frame()["text"])[:1000]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or str(tiny_model(work / "model"))
        rows = []
        for n in [int(s) for s in args.sizes.split(",")]:
            source = work / f"in-{n}.parquet"
            pd.DataFrame({"text": [texts[i % len(texts)] for i in range(n)]}).to_parquet(source)
            cmd = [sys.executable, "-m", "sentiq", "classify", "--input", str(source), "--model", model]
            cmd += ["--output", str(work / f"out-{n}.parquet"), "--method", args.method, "--keep-columns", ""]
            cmd += ["--dtype", args.dtype]
            if args.chunk_size:
                cmd += ["--chunk-size", str(args.chunk_size)]
            mib, seconds = peak_rss(cmd)
            rows.append((n, mib, seconds))
            print(f"  {n:>8,} texts  peak {mib:8,.0f} MiB  {seconds:7.1f} s", file=sys.stderr, flush=True)
    base = rows[0][1]
    print(f"dtype {args.dtype}, chunk size {args.chunk_size or 'default'}, CPU flags: {_cpu_flags()}")
    print(f"{'texts':>10} {'peak MiB':>10} {'vs first':>9} {'seconds':>9}")
    for n, mib, seconds in rows:
        print(f"{n:>10,} {mib:>10,.0f} {mib / base:>8.2f}x {seconds:>9.1f}")


def _cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ",".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text) or "unknown"


if __name__ == "__main__":
    main()
