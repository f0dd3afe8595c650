"""The prompt search: every candidate prompt scored once with loglik on the tuning split, every
calibration and ending from those same scores, small ensembles of the best, and the first answer token
of the generation methods read off the same pass; chosen by the one-standard-error rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from sentiq.methods.grids import scores_and_answers
from sentiq.settings import CALIBRATIONS, MethodConfig, PromptTuneSettings
from sentiq.text import LABELS
from sentiq.workflows.tuning.choices import (
    SPLIT,
    TuneResult,
    cell_names,
    chosen_name,
    require_binary,
    save_search,
    tuning_folder,
)


def tune_prompt(model: Any, settings: PromptTuneSettings, start_task: Any) -> TuneResult:
    """Score every candidate prompt once with loglik on the tuning split, then every calibration from
    those same scores (plus the content-free and in-domain inputs each calibration needs), then the
    mean of the best few prompts. Chosen by the one-standard-error rule (see _simplest_within_error)."""
    from sentiq.core.engine import load_engine
    from sentiq.io.datasets import balanced_sample, load_pool, load_tuning
    from sentiq.io.files import write_frame
    from sentiq.methods.calibration import domain_inputs
    from sentiq.methods.prompts import CONTENT_FREE, builtin_refs, load_prompt, load_prompts
    from sentiq.methods.texts import endings, prepare
    from sentiq.settings import DEFAULT_PROMPT

    builtin = [p for p in map(load_prompt, builtin_refs()) if p.labels == LABELS]  # the split's labels
    prompts = load_prompts(settings.prompts) if settings.prompts else builtin
    require_binary(prompts, "tune-prompt")
    specs = {p.ref: p.spec for p in prompts}
    split = balanced_sample(load_tuning(), settings.n, settings.seed)
    demos = load_pool()  # as evaluation draws them: with the same seed, the same demonstrations
    engine = load_engine(model)
    base = MethodConfig(
        method="k-shot" if settings.k else "loglik",
        scoring="loglik",
        k=settings.k or MethodConfig.k,
        max_tokens=settings.max_tokens,
        seed=settings.seed,
    )
    texts = [t for t, _ in prepare(engine, list(split["text"]), settings.max_tokens)]
    inputs = {"texts": texts, "contextual": list(CONTENT_FREE), "domain": domain_inputs(texts, settings.seed)}
    ends = {kind: endings(xs, settings.tail) for kind, xs in inputs.items()} if settings.tail else {}
    draws = [settings.seed + i for i in range(settings.draws)] if settings.k else [None]
    advance = start_task(
        f"scoring {len(prompts)} prompts" + (f" x {len(draws)} demonstration sets" if len(draws) > 1 else ""),
        (len(texts) + len(ends.get("texts", [[]])[0])) * len(prompts) * len(draws),
    )
    gold = np.array([lab == "positive" for lab in split["label"]])
    searched = [
        _search(engine, replace(base, demo_seed=draw), demos, prompts, inputs, ends, gold, settings, advance)
        for draw in draws
    ]
    grid = pd.concat([g for g, _ in searched], ignore_index=True)
    answered = pd.concat([a for _, a in searched], ignore_index=True)
    top = grid.loc[_simplest_within_error(grid, len(texts))]
    generated = answered.loc[_simplest_within_error(answered, len(texts))] if len(answered) else None
    baseline = DEFAULT_PROMPT if DEFAULT_PROMPT in specs else prompts[0].ref
    default = grid[(grid["prompt"] == baseline) & (grid["calibrate"] == "none") & (grid["tail"] == 0)].iloc[0]
    best = {
        "model": engine.lm.source.ref,
        **_choice(top, specs, settings.k),
        "k": settings.k,
        **({"draws": settings.draws} if settings.k else {}),
        "macro_f1": float(top["macro_f1"]),
        "positive_share": float(top["positive_share"]),
        "top_accuracy": float(grid["accuracy"].max()),
        "rule": "the simplest cell within one standard error of the top accuracy",
        "baseline": {"prompt": baseline, "calibrate": "none", "accuracy": float(default["accuracy"])},
        "prompts": {p.ref: p.record() for p in prompts},
        "n": len(texts),
        "seed": settings.seed,
        "max_tokens": settings.max_tokens,
        "split": SPLIT,
    }
    if generated is not None:  # for methods that generate: decided by their first answer token
        best["generation"] = {
            **_choice(generated, specs, settings.k),
            "top_accuracy": float(answered["accuracy"].max()),
        }
    folder = tuning_folder(settings.output_dir, model.model, "k-shot-prompt" if settings.k else "prompt")
    named = grid.assign(prompt=cell_names(grid))
    table = named.pivot(index="prompt", columns="calibrate", values="accuracy")
    table = table.loc[list(dict.fromkeys(named["prompt"])), list(CALIBRATIONS)]
    scoring = f"k-shot k={settings.k} loglik" if settings.k else "loglik"
    title = f"{engine.lm.source.label} · {scoring} accuracy by prompt and calibration · n={best['n']}"
    chosen = (chosen_name(best, grid), best["calibrate"])
    save_search(folder, grid, best, table, chosen, ("calibration", "prompt", "accuracy"), title)
    if len(answered):
        write_frame(folder / "generation.csv", answered)
    return TuneResult(grid, best, folder, "prompt")


def _search(
    engine: Any,
    base: MethodConfig,
    pool: pd.DataFrame,
    prompts: list[Any],
    inputs: dict[str, list[str]],
    ends: dict[str, tuple[list[int], list[str]]],
    gold: np.ndarray,
    settings: PromptTuneSettings,
    advance: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """With one set of demonstrations (or none): every prompt scored once, then the grid of its cells and
    of small ensembles by label scores, and the grid of the answerable prompts' cells by first answers."""
    from sentiq.methods.classifier import Classifier

    scored: dict[str, dict[str, np.ndarray]] = {}
    answers: dict[str, dict[str, Any]] = {}  # per prompt: first-answer-token log-probabilities, their labels
    for prompt in prompts:
        clf = Classifier(engine, replace(base, prompt=prompt.spec), pool=pool, prompts=[prompt])
        clf.warm_up()
        scored[prompt.ref], answer = read_views(clf, inputs, ends, advance)
        if clf.bound[0].answerable:  # generation refuses the others
            answers[prompt.ref] = answer
    tails = (0, settings.tail) if settings.tail else (0,)
    cells = [(cal, tail) for tail in tails for cal in CALIBRATIONS]
    rows = [_cell(ref, [ref], cal, tail, scored, gold) for ref in scored for cal, tail in cells]
    answered = pd.DataFrame(
        [_answer_cell(ref, cal, tail, answers[ref], gold) for ref in answers for cal, tail in cells]
    )
    singles = pd.DataFrame(rows).sort_values(["accuracy", "macro_f1"], ascending=False, kind="stable")
    leaders = list(dict.fromkeys(singles["prompt"]))
    for size in range(2, min(settings.ensemble, len(leaders)) + 1):
        members = leaders[:size]
        rows += [_cell(",".join(members), members, cal, tail, scored, gold) for cal, tail in cells]
    if base.demo_seed is None:
        return pd.DataFrame(rows), answered
    return pd.DataFrame(rows).assign(demo_seed=base.demo_seed), answered.assign(demo_seed=base.demo_seed)


def read_views(
    clf: Any, inputs: dict[str, list[str]], ends: dict[str, tuple[list[int], list[str]]], advance: Any = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One prompt's label scores and first-answer-token log-probabilities for every kind of input, and
    with `ends` for each input's ending too ('KIND@tail'; an input no longer than it is its own)."""
    scores: dict[str, np.ndarray] = {}
    answers: dict[str, Any] = {}
    for kind, xs in inputs.items():
        shown = (lambda idx, rows, s: advance(len(idx))) if kind == "texts" and advance else None
        scores[kind], answers[kind], answers["names"] = scores_and_answers(clf, xs, on_batch=shown)
        if kind in ends:
            which, last = ends[kind]
            ending, ending_first = scores[f"{kind}@tail"], answers[f"{kind}@tail"] = (
                scores[kind].copy(),
                answers[kind].copy(),
            )
            if which:
                ending[which], ending_first[which], _ = scores_and_answers(clf, last, on_batch=shown)
    return scores, answers


def _simplest_within_error(grid: pd.DataFrame, n: int) -> Any:
    """The one-standard-error rule: of the cells whose accuracy lies within one binomial standard
    error of the best, the simplest (one prompt before an ensemble, no calibration before any), then
    the most accurate, then the cheaper (the whole text alone before text and ending), then macro-F1,
    then the earlier candidate. A small split cannot tell apart cells a point or two apart, and a
    calibration or an ensemble chosen on such an edge can cost more on new texts. Scoring the ending
    too fits nothing to the split, so it only has to be more accurate."""
    best = grid["accuracy"].max()
    close = grid[grid["accuracy"] >= best - np.sqrt(best * (1 - best) / n) - 1e-12].assign(
        members=lambda g: g["prompt"].str.count(",") + 1,
        calibration_rank=lambda g: g["calibrate"].map(CALIBRATIONS.index),
    )
    order = ["members", "calibration_rank", "accuracy", "tail", "macro_f1"]
    return close.sort_values(order, ascending=[True, True, False, True, False], kind="stable").index[0]


def answered_positive(calibrate: str, tail: int, answers: dict[str, Any]) -> np.ndarray:
    """Which texts a prompt's generation would call positive, read off its scoring pass (read_views):
    the greedy first answer token among those that start a label word in any casing (an answer that
    starts elsewhere is not modelled)."""
    from sentiq.text import LABELS

    first = first_answer_step(calibrate, tail, answers)
    return np.array(answers["names"])[first.argmax(dim=1).numpy()] == LABELS.index("positive")


def first_answer_step(calibrate: str, tail: int, answers: dict[str, Any]) -> Any:
    """The first decoding step's log-probabilities of the answer tokens, the ending mixed in and the
    prior divided out exactly as decoding does (the same functions, on those columns)."""
    import torch

    from sentiq.core.decoding import divide_prior, mix_first
    from sentiq.methods.calibration import log_softmax, softmax
    from sentiq.text import LABELS

    own = list(range(len(LABELS)))  # the label words' own first tokens lead the columns
    views = ("", "@tail") if tail else ("",)
    labelled = lambda kind: [log_softmax(answers[kind + v][:, own]) for v in views]  # noqa: E731
    first = torch.from_numpy(answers["texts"])
    if tail:
        first = mix_first(first, own, torch.from_numpy(labelled("texts")[1]))
    if calibrate != "none":
        prior = softmax(np.mean(labelled("texts" if calibrate == "batch" else calibrate), axis=0)).mean(axis=0)
        first = divide_prior(first, tuple(zip(own, np.log(prior).tolist())))
    return first


def _answer_cell(name: str, calibrate: str, tail: int, answers: dict[str, Any], gold: np.ndarray) -> dict[str, Any]:
    return _row(name, calibrate, tail, answered_positive(calibrate, tail, answers), gold)


def _cell(name: str, members: list[str], calibrate: str, tail: int, scored: dict, gold: np.ndarray) -> dict[str, Any]:
    """One grid cell: the members' label log-probabilities averaged (as an ensemble does, over each
    input and, with `tail`, its ending too), the prior of `calibrate` divided out, scored against the
    gold labels."""
    from sentiq.methods.calibration import log_softmax, softmax

    views = ("", "@tail") if tail else ("",)
    mean = lambda kind: np.mean([log_softmax(scored[m][kind + v]) for m in members for v in views], axis=0)  # noqa: E731
    logp = mean("texts")
    if calibrate != "none":
        prior = softmax(logp if calibrate == "batch" else mean(calibrate)).mean(axis=0)
        logp = logp - np.log(prior)
    return _row(name, calibrate, tail, logp[:, 0] >= logp[:, 1], gold)


def _row(name: str, calibrate: str, tail: int, positive: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    from sentiq.workflows.metrics import quality

    q = quality(["positive" if g else "negative" for g in gold], ["positive" if p else "negative" for p in positive])
    return dict(
        prompt=name,
        calibrate=calibrate,
        tail=tail,
        accuracy=q.accuracy,
        macro_f1=q.macro_f1,
        positive_share=float(positive.mean()),
    )


def _choice(row: pd.Series, specs: dict[str, str], k: int) -> dict[str, Any]:
    """A chosen grid row as --tuned applies it: prompt, calibration, ending and, in a search with
    demonstrations, which set (with its texts, so the choice can be read)."""
    from sentiq.workflows.evaluate import demonstrations

    choice = {
        "prompt": ",".join(specs[r] for r in str(row["prompt"]).split(",")),
        "prompt_names": str(row["prompt"]),
        "calibrate": str(row["calibrate"]),
        "tail": int(row["tail"]),
        "accuracy": float(row["accuracy"]),
    }
    if "demo_seed" in row:
        seed = int(row["demo_seed"])
        choice |= {"demo_seed": seed, **demonstrations(MethodConfig(method="k-shot", k=k, demo_seed=seed))}
    return choice
