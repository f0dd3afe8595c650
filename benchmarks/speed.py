"""Speed of sentiq's engine against the simple loop, measured in one process on the same reviews.

    python benchmarks/speed.py --model PATH [--n 100] [--device auto] [--dtype auto] [--json OUT]
    python benchmarks/speed.py --random-weights qwen2.5-1.5b --tokenizer DIR --n 500 --device cuda

Paths measured, each after a warm-up, the device synchronized before every clock read (with the rows and
padded tokens per forward pass of the engine's paths):
  reference   one review at a time: chat template, generate(max_new_tokens=1, do_sample=False)
  loglik      sentiq loglik (length-sorted token-budget batches, cached prompt prefix)
  zero-shot   sentiq zero-shot (greedy, up to 8 new tokens)
  k-shot      sentiq k-shot, --k demonstrations per class, label log-likelihood, demonstrations cached
  k-shot-full the same k-shot prompts with nothing cached: every review recomputes the demonstrations
Speed does not depend on the weights' values, so --random-weights builds the exact Qwen2.5 shape.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import chosen_models, load_lm, model_arguments, sync  # noqa: E402

from sentiq.core.engine import Engine
from sentiq.core.models import LoadedModel
from sentiq.io.datasets import embedded_frame
from sentiq.methods.plan import plan_method
from sentiq.methods.prompts import DEFAULT_PROMPT, load_prompt
from sentiq.methods.runner import MethodRunner, make_runner
from sentiq.methods.texts import prepare
from sentiq.settings import MethodConfig
from sentiq.text import clean_text, word_count


def timed(device: torch.device, fn: Any) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def reference_loop(lm: LoadedModel, texts: list[str]) -> None:
    """The original study's way: one review at a time through generate."""
    for text in texts:
        enc = lm.tokenizer.apply_chat_template(
            load_prompt(DEFAULT_PROMPT).messages(text),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(lm.device)
        with torch.inference_mode():
            lm.model.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)


def full_kshot(engine: Engine, clf: MethodRunner, texts: list[str]) -> None:
    """k-shot prompts scored with no prefix cache: every review pays for the demonstrations."""
    (b,) = clf.bound
    bodies = [engine.encode(b.template.full(t)) for t, _ in prepare(engine, texts, clf.config.max_tokens)]
    engine.score([], bodies, b.label_ids)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Achievable dense matmul TFLOP/s on this device and dtype: a large square GEMM (smaller on CPUs,
    where one 8192-wide product takes seconds)."""
    n, reps = (8192, 20) if device.type == "cuda" else (2048, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    seconds = timed(device, lambda: [a @ b for _ in range(reps)])
    return 2 * n**3 * reps / seconds / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(ap)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--k", type=int, default=5, help="k-shot demonstrations per class")
    ap.add_argument("--skip", default="", help="comma-separated paths to leave out, e.g. k-shot-full")
    args = ap.parse_args()
    (shape,) = chosen_models(ap, args, several=False)
    lm = load_lm(args, shape)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    import pandas as pd

    frame = pd.read_parquet(args.dataset) if args.dataset else embedded_frame().query("split == 'eval'")
    texts = [clean_text(t) for t in frame["text"].sample(n=args.n, random_state=0)]
    warm = texts[: min(8, len(texts))]
    words = sum(word_count(t) for t in texts)
    engine = Engine(lm, max_batch_tokens=args.batch_tokens)
    pool = (
        embedded_frame().query("split == 'pool'").assign(label=lambda d: d["label"].map({1: "positive", 0: "negative"}))
    )
    demos_pool = pool[["id", "text", "label"]]
    methods = {
        "loglik": make_runner(engine, plan_method(MethodConfig(method="loglik"))),
        "zero-shot": make_runner(engine, plan_method(MethodConfig(method="zero-shot"))),
        "k-shot": make_runner(
            engine, plan_method(MethodConfig(method="k-shot", k=args.k, scoring="loglik"), pool=demos_pool)
        ),
    }
    prompt_tokens = sum(len(engine.encode(methods["loglik"].bound[0].template.full(t))) for t in texts)
    kshot_tokens = sum(len(engine.encode(methods["k-shot"].bound[0].template.full(t))) for t in texts)
    paths = {
        "reference": (lambda ts: reference_loop(lm, ts), prompt_tokens),
        **{
            name: (lambda ts, c=clf: c.predict(ts), kshot_tokens if name == "k-shot" else prompt_tokens)
            for name, clf in methods.items()
        },
        "k-shot-full": (lambda ts: full_kshot(engine, methods["k-shot"], ts), kshot_tokens),
    }
    skip = set(filter(None, args.skip.split(",")))
    non_embedding = sum(
        p.numel() for n, p in lm.model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n
    )
    peak = matmul_peak(lm.device, lm.dtype)
    results: dict[str, Any] = {}
    for name, (run, tokens) in paths.items():
        if name in skip:
            continue
        run(warm)
        if lm.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(lm.device)
        engine.planner.stats.clear()
        seconds = timed(lm.device, lambda r=run: r(texts))
        batches = list(engine.planner.stats)
        row = {
            "seconds": seconds,
            "words_per_s": words / seconds,
            "tokens_per_s": tokens / seconds,
            "prompt_tokens": tokens,
        }
        if lm.device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(lm.device) / 2**30
        if batches:  # how full the forward passes were (the reference loop makes one per review)
            row["batches"] = len(batches)
            row["rows_per_batch"] = sum(b.rows for b in batches) / len(batches)
            row["tokens_per_batch"] = sum(b.padded for b in batches) / len(batches)
        row["tflops"] = 2 * non_embedding * tokens / seconds / 1e12
        row["share_of_peak"] = row["tflops"] / peak
        results[name] = row
        print(f"  {name:<12} {seconds:8.2f} s  {row['words_per_s']:>10,.0f} words/s", file=sys.stderr, flush=True)
    base = results.get("reference", {}).get("words_per_s")
    for row in results.values():
        row["speedup"] = row["words_per_s"] / base if base else None
    if "k-shot" in results and "k-shot-full" in results:
        results["k-shot"]["speedup_over_full"] = results["k-shot-full"]["seconds"] / results["k-shot"]["seconds"]
    if "k-shot" in results and "loglik" in results:
        results["k-shot"]["time_vs_loglik"] = results["k-shot"]["seconds"] / results["loglik"]["seconds"]
    report = {
        "model": lm.source.ref,
        "device": str(lm.device),
        "device_name": torch.cuda.get_device_name(lm.device) if lm.device.type == "cuda" else None,
        "dtype": str(lm.dtype).removeprefix("torch."),
        "n": len(texts),
        "words": words,
        "k": args.k,
        "max_batch_tokens": engine.planner.max_tokens,
        "batch_fill_tokens": engine.planner.fill,
        "matmul_peak_tflops": peak,
        "non_embedding_params": non_embedding,
        **results,
    }
    print_table(report, list(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


def print_table(report: dict[str, Any], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"{report['model']} · {report['device_name'] or report['device']} · {report['dtype']} · n={report['n']} · "
        f"matmul peak {report['matmul_peak_tflops']:.3g} TFLOP/s"
    )
    table = Table(title=title, title_justify="left")
    for col in (
        "path",
        "seconds",
        "words/s",
        "tokens/s",
        "speedup",
        "TFLOP/s",
        "rows/batch",
        "tokens/batch",
        "peak GiB",
    ):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name in names:
        r = report[name]
        table.add_row(
            name,
            f"{r['seconds']:.2f}",
            f"{r['words_per_s']:,.0f}",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['speedup']:.2f}x" if r.get("speedup") else "",
            f"{r['tflops']:.3g} ({100 * r['share_of_peak']:.0f}%)",
            f"{r['rows_per_batch']:.1f}" if "rows_per_batch" in r else "",
            f"{r['tokens_per_batch']:,.0f}" if "tokens_per_batch" in r else "",
            f"{r['peak_memory_gib']:.1f}" if "peak_memory_gib" in r else "",
        )
    Console().print(table)
    if "speedup_over_full" in report.get("k-shot", {}):
        ks = report["k-shot"]
        print(
            f"k-shot: {ks['speedup_over_full']:.2f}x faster than recomputing demonstrations; "
            f"{ks['time_vs_loglik']:.2f}x loglik's time"
        )


if __name__ == "__main__":
    main()
