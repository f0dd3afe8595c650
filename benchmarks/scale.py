"""The same texts labelled by the local engine (one process) and by Ray Data (a pool of workers), in one
run on this machine: words/s of each, their ratio, and Ray's start-up time on its own.

    python benchmarks/scale.py [--n 2000] [--model PATH] [--workers 2] [--threads 1] [--method loglik]

Local: one process with workers x threads torch threads. Ray: a local cluster started in this process,
--workers actors of --threads threads each. Both read the same parquet file and write parquet, and both
times include loading the model (once locally, once per actor). Without --model a tiny random Qwen2
(as the tests build) stands in: what is measured is then the pipeline's cost around the model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", help="a model folder [default: a tiny random Qwen2]")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per Ray worker")
    ap.add_argument("--method", default="loglik")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    import torch
    from memory import _cpu_flags, tiny_model

    from sentiq import classify_file
    from sentiq.io.datasets import embedded_frame
    from sentiq.settings import MethodConfig, ModelSettings, RaySettings
    from sentiq.text import word_count

    texts = list(embedded_frame()["text"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = ModelSettings(model=args.model or str(tiny_model(work / "model")), dtype=args.dtype)
        method = MethodConfig(method=args.method)
        frame = pd.DataFrame(
            {"id": [str(i) for i in range(args.n)], "text": [texts[i % len(texts)] for i in range(args.n)]}
        )
        frame.to_parquet(work / "in.parquet")
        words = sum(word_count(t) for t in frame["text"])

        torch.set_num_threads(args.workers * args.threads)
        start = time.perf_counter()
        classify_file(work / "in.parquet", work / "local.parquet", model=model, method=method, keep_columns="")
        local = time.perf_counter() - start

        import ray

        start = time.perf_counter()
        scale = RaySettings(backend="ray", workers=args.workers, cpus_per_worker=args.threads)
        ray.init(num_cpus=args.workers * args.threads + 1, include_dashboard=False, logging_level="ERROR")
        startup = time.perf_counter() - start
        ray.data.DataContext.get_current().enable_progress_bars = False
        start = time.perf_counter()
        classify_file(
            work / "in.parquet", work / "ray.parquet", model=model, method=method, keep_columns="", scale=scale
        )
        on_ray = time.perf_counter() - start
        ray.shutdown()
        same = pd.read_parquet(work / "local.parquet").set_index("id")["label"]
        other = pd.read_parquet(work / "ray.parquet").set_index("id")["label"]
        agree = float((same.sort_index() == other.sort_index()).mean())

    flags = f"{os.cpu_count()} cores, {_cpu_flags()}"
    print(f"{args.n:,} texts, {words:,} words, model {Path(model.model).name}, {method.method}, CPU: {flags}")
    print(f"{'path':<34} {'seconds':>9} {'words/s':>9}")
    print(f"{f'local (1 process, {args.workers * args.threads} threads)':<34} {local:>9.1f} {words / local:>9,.0f}")
    ray_name = f"ray ({args.workers} workers x {args.threads} thread)"
    print(f"{ray_name:<34} {on_ray:>9.1f} {words / on_ray:>9,.0f}")
    print(
        f"ray / local: {local / on_ray:.2f}x; Ray start-up (ray.init) {startup:.1f} s, not counted above; labels agree {agree:.3f}"
    )


if __name__ == "__main__":
    main()
