"""Where the time goes when sentiq labels many texts, beside a plain batched loop and the compute floor.

    python benchmarks/throughput.py --model PATH [--n 2000] [--device auto] [--dtype auto] [--json OUT]
    python benchmarks/throughput.py --random-weights qwen2.5-1.5b,qwen2.5-0.5b --tokenizer DIR --device cuda

Every path labels the same texts in this one process, each after a warm-up:
  plain-R    the plain loop: prompts tokenized in one call, length-sorted, left-padded batches of R rows,
             attention mask, logits_to_keep=1, the label words' log-probabilities read off (tokenization
             included); the fastest R is the anchor
  loglik, zero-shot, k-shot   MethodRunner.predict, the call `classify` and `evaluate` make per chunk, from
             the raw texts (cleaning, truncation and tokenization included; k-shot's demonstrations cached)
  stream     sentiq.workflows.classify.classify: a parquet file in, a parquet file out, as `classify --input --output`
  states, states-half   the hidden state at the answer position (what a probe reads) through every layer,
             and through the first half of them (the rest and the vocabulary head not run)
For each: words/s, the ratio to the anchor, the share of the compute floor (2 x non-embedding parameters x
prompt tokens at the GEMM rate measured in this run), passes, padded tokens per pass, padding share,
device-busy share (CUDA-event time of the forward passes over wall time), host seconds per stage
(read, tokenize, plan, forward, post-process, write; `other` is the rest), peak memory, and, for loglik,
the largest |delta label log-probability| against a float32 copy of the model on a subset. The table comes
last, the JSON beside it. On a CPU with the tests' tiny model it runs in seconds (the suite runs it so).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sentiq.core.engine import Engine
from sentiq.core.models import LoadedModel, load_model, pick_device, pick_dtype
from sentiq.core.stages import StageClock
from sentiq.io.datasets import embedded_frame, load_pool
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import make_runner
from sentiq.methods.texts import prepare
from sentiq.model_source import ModelSource
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings
from sentiq.text import clean_text, word_count
from sentiq.workflows.classify import classify, make_source

SHAPES = {  # Qwen2.5-{0.5B,1.5B}-Instruct config.json
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12),
}
STAGES = ("read", "tokenize", "plan", "forward", "post-process", "write", "other")
METHODS = {
    "loglik": MethodConfig(method="loglik"),
    "zero-shot": MethodConfig(method="zero-shot"),
    "k-shot": MethodConfig(method="k-shot", k=2, scoring="loglik"),
}


def random_model(shape: str, tokenizer_dir: str, device: str, dtype: str) -> LoadedModel:
    """The exact Qwen2.5 shape with random weights: speed does not depend on their values."""
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    config = Qwen2Config(
        vocab_size=151936,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        **SHAPES[shape],
    )
    with dev:
        model = Qwen2ForCausalLM(config).to(torch_dtype).eval().requires_grad_(False)
    model.generation_config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, top_k=20)  # as Qwen ships
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model.generation_config.pad_token_id = tok.pad_token_id
    return LoadedModel(model, tok, ModelSource("dir", f"random-{shape}"), dev, torch_dtype, None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def gemm_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Achievable dense matmul FLOP/s on this device and dtype (a smaller product on CPUs)."""
    n, reps = (8192, 20) if device.type == "cuda" else (1024, 5)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


class Probe:
    """The plain loop's own measurements: host seconds per stage, its forward passes and tokens, and the
    CUDA-event time of each pass. sentiq's paths need none: their engine keeps the same per stage
    (`Engine.clock`) and per batch (`BatchPlanner.stats`)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.clock = StageClock()
        self.events: list[tuple[Any, Any]] = []
        self.passes = 0
        self.padded = self.real = 0

    def stage(self, name: str) -> Any:
        return self.clock.stage(name)

    def forward(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A forward pass: timed on the host and, on CUDA, between two events on the device."""

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            self.passes += 1
            with self.stage("forward"):
                if self.device.type != "cuda":
                    return fn(*args, **kwargs)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn(*args, **kwargs)
                end.record()
                self.events.append((start, end))
                return out

        return inner

    def device_seconds(self) -> float | None:
        if self.device.type != "cuda":
            return None
        sync(self.device)
        return sum(s.elapsed_time(e) for s, e in self.events) / 1000


def plain_loop(lm: LoadedModel, prompts: list[str], label_ids: list[int], rows: int, probe: Probe) -> np.ndarray:
    """The 20-line loop sentiq has to beat: log P(label word) as the next token, (texts, labels)."""
    tok, model, dev = lm.tokenizer, lm.model, lm.device
    with probe.stage("tokenize"):
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
    with probe.stage("plan"):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), len(label_ids)))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(order), rows):
        batch = order[start : start + rows]
        with probe.stage("plan"):
            longest = max(len(ids[i]) for i in batch)
            grid = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, i in enumerate(batch):
                grid[r, longest - len(ids[i]) :] = torch.as_tensor(ids[i])
                mask[r, longest - len(ids[i]) :] = 1
            probe.padded += grid.numel()
            probe.real += int(mask.sum())
            grid, mask = grid.to(dev), mask.to(dev)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)

        def step(grid: torch.Tensor = grid, mask: torch.Tensor = mask, positions: torch.Tensor = positions) -> Any:
            with torch.inference_mode():
                logits = model(input_ids=grid, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
                return logits[:, -1].float().log_softmax(-1)[:, label_ids].cpu().numpy()

        out[batch] = probe.forward(step)()
    return out


def measure(lm: LoadedModel, name: str, run: Callable[[Probe], Any], words: int, engine: Engine | None) -> dict:
    """One path over every text: wall time, stages, passes and device time, as the engine (or, for the
    plain loop, the probe) measured them."""
    probe = Probe(lm.device)
    if engine is not None:
        engine.planner.stats.clear()
        engine.clock.clear()
    if lm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(lm.device)
    sync(lm.device)
    start = time.perf_counter()
    result = run(probe)
    sync(lm.device)
    wall = time.perf_counter() - start
    clock = engine.clock if engine is not None else probe.clock
    stages = {s: clock.seconds.get(s, 0.0) for s in STAGES[:-1]}
    stages["other"] = max(0.0, wall - sum(stages.values()))
    row: dict[str, Any] = {"path": name, "seconds": wall, "words_per_s": words / wall, "stages": stages}
    stats = list(engine.planner.stats) if engine is not None else []
    passes = len(stats) or probe.passes
    padded = sum(b.padded for b in stats) if stats else probe.padded
    real = sum(b.tokens for b in stats) if stats else probe.real
    row |= {"passes": passes, "padded_per_pass": padded / max(1, passes), "padding": 1 - real / max(1, padded)}
    # sentiq's passes are timed synchronized, so a pass's host time is the device's from launch to finish
    busy = (
        probe.device_seconds()
        if engine is None
        else sum(b.seconds for b in stats)
        if lm.device.type == "cuda"
        else None
    )
    row["device_busy"] = None if busy is None else busy / wall
    row["peak_memory_gib"] = (
        torch.cuda.max_memory_allocated(lm.device) / 2**30
        if lm.device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's, so far
    )
    print(f"  {name:<10} {wall:8.2f} s  {row['words_per_s']:>10,.0f} words/s", file=sys.stderr, flush=True)
    row["_result"] = result
    return row


def bench_model(lm: LoadedModel, texts: list[str], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every path on one model; the anchor, floor and float32 delta computed from their rows."""
    engine = Engine(lm, max_batch_tokens=args.batch_tokens)
    words = sum(word_count(t) for t in texts)
    pool = load_pool()
    clfs = {name: make_runner(engine, plan_method(cfg, pool=pool)) for name, cfg in METHODS.items()}
    bound = clfs["loglik"].bound[0]
    prompts = [bound.template.full(t) for t, _ in prepare(engine, texts, clfs["loglik"].config.max_tokens)]
    label_ids = [ids[0] for ids in bound.label_ids]
    prompt_tokens = sum(len(x) for x in lm.tokenizer(prompts, add_special_tokens=False)["input_ids"])
    source = workdir / "texts.parquet"
    pd.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts}).to_parquet(source, index=False)
    warm = texts[: min(8, len(texts))]

    paths: dict[str, Callable[[Probe], Any]] = {}
    for rows in args.rows:
        paths[f"plain-{rows}"] = lambda probe, rows=rows: plain_loop(lm, prompts, label_ids, rows, probe)
    for name, clf in clfs.items():
        paths[name] = lambda probe, clf=clf: clf.predict(texts)

    def stream(probe: Probe) -> Any:
        out = workdir / f"labels-{time.monotonic_ns()}.parquet"
        settings = ClassifySettings(output=out)  # the stream classify_file consumes, on this engine
        with classify(
            make_source([], source, settings), settings, ModelSettings(), METHODS["loglik"], engine
        ) as labels:
            for _ in labels:
                pass
        return labels.summary

    paths["stream"] = stream

    def states(probe: Probe, layers: int | None) -> Any:  # what a probe reads: no vocabulary head
        fitted = [t for t, _ in prepare(engine, texts, clfs["loglik"].config.max_tokens)]
        return list(engine.state_batches(bound.prefix, bound.bodies(engine, fitted), layers))

    paths["states"] = lambda probe: states(probe, None)
    paths["states-half"] = lambda probe: states(probe, max(1, engine.depth // 2))
    rows: list[dict[str, Any]] = []
    for name, run in paths.items():
        if name in args.skip:
            continue
        if name.startswith("plain"):
            plain_loop(lm, prompts[: len(warm)], label_ids, args.rows[0], Probe(lm.device))
        elif name in clfs:
            clfs[name].predict(warm)
        rows.append(measure(lm, name, run, words, None if name.startswith("plain") else engine))
    return _report(lm, engine, texts, words, prompt_tokens, rows, args)


def _report(
    lm: LoadedModel,
    engine: Engine,
    texts: list[str],
    words: int,
    prompt_tokens: int,
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    non_embedding = sum(
        p.numel() for n, p in lm.model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n
    )
    rate = gemm_rate(lm.device, lm.dtype)
    floor_words_per_s = words / (2 * non_embedding * prompt_tokens / rate)
    plain = [r for r in rows if r["path"].startswith("plain")]
    anchor = max(plain, key=lambda r: r["words_per_s"]) if plain else None
    by_path = {r["path"]: r for r in rows}
    for r in rows:
        r["vs_anchor"] = r["words_per_s"] / anchor["words_per_s"] if anchor else None
        r["share_of_floor"] = r["words_per_s"] / floor_words_per_s
    agreement = None
    if anchor is not None and "loglik" in by_path:
        ours = [p.label for p in by_path["loglik"]["_result"]]
        theirs = ["positive" if s[0] >= s[1] else "negative" for s in anchor["_result"]]
        agreement = float(np.mean([a == b for a, b in zip(ours, theirs)]))
    for r in rows:
        r.pop("_result")
    return {
        "model": lm.source.ref,
        "device": str(lm.device),
        "device_name": torch.cuda.get_device_name(lm.device) if lm.device.type == "cuda" else _cpu_name(),
        "dtype": str(lm.dtype).removeprefix("torch."),
        "n": len(texts),
        "words": words,
        "prompt_tokens": prompt_tokens,
        "non_embedding_params": non_embedding,
        "gemm_tflops": rate / 1e12,
        "floor_words_per_s": floor_words_per_s,
        "max_batch_tokens": engine.planner.max_tokens,
        "anchor": anchor["path"] if anchor else None,
        "anchor_agreement": agreement,  # share of texts where the plain loop and loglik name the same label
        "max_delta_vs_float32": float32_delta(lm, engine, texts[: args.reference]) if args.reference else None,
        "paths": rows,
    }


def float32_delta(lm: LoadedModel, engine: Engine, texts: list[str]) -> float:
    """The largest |delta| of loglik's label log-probabilities against the same weights in float32."""
    ours = make_runner(engine, plan_method(METHODS["loglik"])).label_logprobs([clean_text(t) for t in texts])
    if lm.dtype == torch.float32:
        reference_engine = engine
    else:
        reference = LoadedModel(
            copy.deepcopy(lm.model).float(), lm.tokenizer, lm.source, lm.device, torch.float32, None
        )
        reference_engine = Engine(reference, max_batch_tokens=engine.planner.max_tokens)
    loglik = make_runner(reference_engine, plan_method(METHODS["loglik"]))
    theirs = loglik.label_logprobs([clean_text(t) for t in texts])
    return float(np.abs(ours - theirs).max())


def _cpu_name() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "CPU")
    extras = [f for f in ("avx512_bf16", "amx_bf16", "avx2") if f" {f}" in flags]
    return f"{model} ({', '.join(extras) or 'no AVX2'})"


def print_tables(reports: list[dict[str, Any]]) -> None:
    """Per model: what each path reached, then where its host time went."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for rep in reports:
        title = (
            f"{rep['model']} · {rep['device_name']} · {rep['dtype']} · n={rep['n']} · GEMM {rep['gemm_tflops']:.3g} "
            f"TFLOP/s · floor {rep['floor_words_per_s']:,.0f} words/s · anchor {rep['anchor']}"
        )
        # Headers on two lines and no column rules: both tables fit 80 columns with every header whole.
        narrow: dict[str, Any] = dict(title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        speed = Table(title=title, **narrow)
        busy = any(r["device_busy"] is not None for r in rep["paths"])  # CUDA events only
        heads = ["path", "words/s", "vs\nanchor", "of\nfloor", "passes", "padded\n/pass", "padding"]
        heads += [*(["busy"] if busy else []), "peak\nGiB"]
        for col in heads:
            speed.add_column(col, justify="left" if col == "path" else "right", no_wrap=True)
        stages = Table(title="host seconds per stage", **narrow)
        for col in ["path", "wall", *(s.replace("-", "-\n") for s in STAGES)]:
            stages.add_column(col, justify="left" if col == "path" else "right", no_wrap=True)
        for r in rep["paths"]:
            speed.add_row(
                r["path"],
                f"{r['words_per_s']:,.0f}",
                _fmt(r["vs_anchor"], "{:.2f}x"),
                f"{100 * r['share_of_floor']:.1f}%",
                f"{r['passes']:,}",
                f"{r['padded_per_pass']:,.0f}",
                f"{r['padding']:.0%}",
                *([_fmt(r["device_busy"], "{:.0%}")] if busy else []),
                f"{r['peak_memory_gib']:.2f}",
            )
            stages.add_row(r["path"], f"{r['seconds']:.2f}", *[f"{r['stages'][s]:.2f}" for s in STAGES])
        console.print(speed)
        console.print(stages)
        notes = [f"loglik and the anchor name the same label for {rep['anchor_agreement']:.1%} of texts"]
        if rep["max_delta_vs_float32"] is not None:
            notes.append(f"largest |delta label log-prob| against float32: {rep['max_delta_vs_float32']:.2e}")
        console.print("; ".join(notes), soft_wrap=True)


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else spec.format(value)


def load_texts(path: Path | None, n: int) -> list[str]:
    """n reviews: the given parquet's `text` column, or every embedded review (2,400) repeated to n."""
    frame = pd.read_parquet(path) if path else embedded_frame()
    texts = list(frame["text"])
    return (texts * (n // len(texts) + 1))[:n]


def model_arguments(ap: argparse.ArgumentParser) -> None:
    """The options both speed benchmarks take: the model or random shapes, where it runs, its token
    budget, the texts and where the JSON goes."""
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a model folder (or alias/hub id when online)")
    src.add_argument("--random-weights", help=f"the exact shape with random weights: {', '.join(SHAPES)}")
    ap.add_argument("--tokenizer", help="tokenizer folder for --random-weights")
    ap.add_argument("--dataset", type=Path, help="a parquet file with a text column")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--json", type=Path, dest="json_out")


def chosen_models(ap: argparse.ArgumentParser, args: argparse.Namespace, several: bool = True) -> list[str | None]:
    """The random shapes asked for (comma-separated where `several`), or [None] for --model."""
    if not args.random_weights:
        return [None]
    shapes = args.random_weights.split(",")
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or (len(shapes) > 1 and not several):
        ap.error(f"--random-weights takes {'shapes' if several else 'one shape'} of: {', '.join(SHAPES)}")
    if not args.tokenizer:
        ap.error("--random-weights needs --tokenizer DIR")
    return shapes


def load_lm(args: argparse.Namespace, shape: str | None) -> LoadedModel:
    if shape:
        return random_model(shape, args.tokenizer, args.device, args.dtype)
    return load_model(args.model, args.device, args.dtype)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(ap)
    ap.add_argument("--n", type=int, default=2000, help="texts [default: the embedded reviews, repeated to n]")
    ap.add_argument("--rows", default="64,128,256", help="the plain loop's batch sizes")
    ap.add_argument("--reference", type=int, default=64, help="texts compared with float32 (0: none)")
    ap.add_argument("--skip", default="", help="comma-separated paths to leave out, e.g. zero-shot,stream")
    args = ap.parse_args(argv)
    args.rows = [int(r) for r in args.rows.split(",")]
    args.skip = set(filter(None, args.skip.split(",")))
    shapes = chosen_models(ap, args)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    texts = load_texts(args.dataset, args.n)
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            lm = load_lm(args, shape)
            print(f"{lm.source.ref} on {lm.device} ({str(lm.dtype).removeprefix('torch.')})", file=sys.stderr)
            reports.append(bench_model(lm, texts, args, Path(tmp)))
            del lm
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    if args.json_out:
        args.json_out.write_text(json.dumps(reports, indent=2) + "\n")
    print_tables(reports)
    return reports


if __name__ == "__main__":
    main()
