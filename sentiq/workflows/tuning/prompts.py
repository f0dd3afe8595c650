"""The prompt search: every candidate prompt scored once with loglik on the tuning split, every
calibration and ending from those same scores, small ensembles of the best, and the first answer token
of the generation methods read off the same pass; chosen by the one-standard-error rule."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentiq.choices import PRIORS
from sentiq.learn_settings import PromptTuneSettings
from sentiq.methods.grids import Advance, scores_and_answers
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import MethodRunner, make_runner
from sentiq.progress import StartTask
from sentiq.searches import TuneResult, cell_names
from sentiq.settings import MethodConfig, ModelSettings
from sentiq.text import word_count
from sentiq.workflows.tuning.cells import Gold, answer_cell, score_cell
from sentiq.workflows.tuning.choices import save_search, tuning_folder
from sentiq.workflows.tuning.records import choice_record
from sentiq.workflows.tuning.splits import builtin_prompts, tuning_split

if TYPE_CHECKING:
    from sentiq.core.engine import Engine
    from sentiq.methods.prompts import Prompt
    from sentiq.workflows.tuning.splits import Split


def tune_prompt(model: ModelSettings, settings: PromptTuneSettings, start_task: StartTask) -> TuneResult:
    """Score every candidate prompt once with loglik on the tuning split, then every calibration from
    those same scores (plus the content-free and in-domain inputs each calibration needs), then the
    mean of the best few prompts. Chosen by the one-standard-error rule (see _simplest_within_error)."""
    from sentiq.core.engine import load_engine
    from sentiq.core.models import home_relative
    from sentiq.io.datasets import pool_for
    from sentiq.io.files import write_frame
    from sentiq.methods.calibration import domain_inputs
    from sentiq.methods.prompts import CONTENT_FREE, load_prompts
    from sentiq.methods.texts import endings, prepare
    from sentiq.workflows.evaluate import refuse_demos_of_the_data

    given = load_prompts(settings.prompts) if settings.prompts else []
    drawn = tuning_split(settings.data, given, settings.n, settings.seed, settings.sample)
    prompts, labels, split = given or builtin_prompts(drawn.labels), drawn.labels, drawn.texts
    base = MethodConfig(
        method="k-shot" if settings.k else "loglik",
        scoring="loglik",
        k=settings.k or MethodConfig.k,
        max_tokens=settings.max_tokens,
        seed=settings.seed,
        demos=settings.demos,
    )
    refuse_demos_of_the_data(settings.data, [base])
    demos = pool_for(base, labels)  # as evaluation draws them: with the same seed, the same demonstrations
    engine = load_engine(model)
    texts = [t for t, _ in prepare(engine, list(split["text"]), settings.max_tokens)]
    if not any(word_count(t) > settings.tail for t in texts):  # every text its own ending: the same cells twice
        settings = replace(settings, tail=0)
    inputs = {"texts": texts, "contextual": list(CONTENT_FREE), "domain": domain_inputs(texts, settings.seed)}
    ends = {kind: endings(xs, settings.tail) for kind, xs in inputs.items()} if settings.tail else {}
    draws = [settings.seed + i for i in range(settings.draws)] if settings.k else [None]
    advance = start_task(
        f"scoring {len(prompts)} prompts" + (f" x {len(draws)} demonstration sets" if len(draws) > 1 else ""),
        (len(texts) + len(ends.get("texts", [[]])[0])) * len(prompts) * len(draws),
    )
    gold = (np.array([labels.index(lab) for lab in split["label"]]), labels)
    searched = [
        _search(engine, replace(base, demo_seed=draw), demos, prompts, inputs, ends, gold, settings, advance)
        for draw in draws
    ]
    grid = pd.concat([g for g, _ in searched], ignore_index=True)
    answered = pd.concat([a for _, a in searched], ignore_index=True)
    # On a balanced split accuracy is macro recall; on a stratified one macro recall does not reward
    # answering the commonest label.
    criterion = "accuracy" if settings.sample == "balanced" else "macro_recall"
    best = {
        "model": home_relative(model.source.ref),
        **_record(grid, answered, criterion, prompts, base, settings, drawn),
    }
    kind = "k-shot-prompt" if settings.k else "prompt"
    folder = tuning_folder(settings.output_dir, model.source, kind, labels)
    named = grid.assign(prompt=cell_names(grid))
    table = named.pivot(index="prompt", columns="calibrate", values=criterion)
    table = table.loc[list(dict.fromkeys(named["prompt"])), list(PRIORS)]
    scoring = f"k-shot k={settings.k} loglik" if settings.k else "loglik"
    measure = criterion.replace("_", " ")
    title = f"{model.source.label} · {scoring} {measure} by prompt and calibration · n={best['n']}"
    result = TuneResult(grid, best, folder, "prompt")
    chosen = (result.chosen_name(result.choice), best["calibrate"])
    save_search(folder, split, grid, best, table, chosen, ("calibration", "prompt", measure), title)
    if len(answered):
        write_frame(folder / "generation.csv", answered)
    return result


def _record(
    grid: pd.DataFrame,
    answered: pd.DataFrame,
    criterion: str,
    prompts: list[Prompt],
    base: MethodConfig,
    settings: PromptTuneSettings,
    drawn: Split,
) -> dict[str, Any]:
    """best.json: the chosen cell (and, for methods that generate, the one chosen by first answers),
    how it was chosen, against what baseline, on which texts."""
    from sentiq.choices import DEFAULT_PROMPT

    n, specs = len(drawn.texts), {p.ref: p.spec for p in prompts}
    top = grid.loc[_simplest_within_error(grid, n, criterion)]
    baseline = DEFAULT_PROMPT if DEFAULT_PROMPT in specs else prompts[0].ref
    default = grid[(grid["prompt"] == baseline) & (grid["calibrate"] == "none") & (grid["tail"] == 0)].iloc[0]
    best = {
        **choice_record(top, specs, base),
        "k": settings.k,
        **({"draws": settings.draws} if settings.k else {}),
        "criterion": criterion,
        "macro_f1": float(top["macro_f1"]),
        "answer_shares": {lab: float(top[f"share_{lab}"]) for lab in drawn.labels},
        f"top_{criterion}": float(grid[criterion].max()),
        "rule": f"the simplest cell within one standard error of the top {criterion.replace('_', ' ')}",
        "baseline": {"prompt": baseline, "calibrate": "none", criterion: float(default[criterion])},
        "prompts": {p.ref: p.record() for p in prompts},
        "labels": list(drawn.labels),
        "n": n,
        "seed": settings.seed,
        "max_tokens": settings.max_tokens,
        "split": drawn.record,
    }
    if len(answered):  # for methods that generate: decided by their first answer token
        generated = answered.loc[_simplest_within_error(answered, n, criterion)]
        best["generation"] = {
            **choice_record(generated, specs, base),
            f"top_{criterion}": float(answered[criterion].max()),
        }
    return best


def _search(
    engine: Engine,
    base: MethodConfig,
    pool: pd.DataFrame,
    prompts: list[Prompt],
    inputs: dict[str, list[str]],
    ends: dict[str, tuple[list[int], list[str]]],
    gold: Gold,
    settings: PromptTuneSettings,
    advance: Advance,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """With one set of demonstrations (or none): every prompt scored once, then the grid of its cells and
    of small ensembles by label scores, and the grid of the answerable prompts' cells by first answers."""
    scored: dict[str, dict[str, np.ndarray]] = {}
    answers: dict[str, dict[str, Any]] = {}  # per prompt: first-answer-token log-probabilities, their labels
    for prompt in prompts:
        runner = make_runner(engine, plan_method(replace(base, prompt=prompt.spec), [prompt], pool))
        scored[prompt.ref], answer = read_views(runner, inputs, ends, advance)
        if runner.bound[0].answerable:  # generation refuses the others
            answers[prompt.ref] = answer
    tails = (0, settings.tail) if settings.tail else (0,)
    cells = [(cal, tail) for tail in tails for cal in PRIORS]
    rows = [score_cell(ref, [ref], cal, tail, scored, gold) for ref in scored for cal, tail in cells]
    answered = pd.DataFrame([answer_cell(ref, cal, tail, answers[ref], gold) for ref in answers for cal, tail in cells])
    singles = pd.DataFrame(rows).sort_values(["accuracy", "macro_f1"], ascending=False, kind="stable")
    leaders = list(dict.fromkeys(singles["prompt"]))
    for size in range(2, min(settings.ensemble, len(leaders)) + 1):
        members = leaders[:size]
        rows += [score_cell(",".join(members), members, cal, tail, scored, gold) for cal, tail in cells]
    if base.demo_seed is None:
        return pd.DataFrame(rows), answered
    return pd.DataFrame(rows).assign(demo_seed=base.demo_seed), answered.assign(demo_seed=base.demo_seed)


def read_views(
    runner: MethodRunner,
    inputs: dict[str, list[str]],
    ends: dict[str, tuple[list[int], list[str]]],
    advance: Advance | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One prompt's label scores and first-answer-token log-probabilities for every kind of input, and
    with `ends` for each input's ending too ('KIND@tail'; an input no longer than it is its own)."""
    scores: dict[str, np.ndarray] = {}
    answers: dict[str, Any] = {}
    for kind, xs in inputs.items():
        shown = advance if kind == "texts" and advance else (lambda n: None)
        scores[kind], answers[kind], answers["names"] = scores_and_answers(runner, xs, shown)
        if kind in ends:
            which, last = ends[kind]
            ending, ending_first = scores[f"{kind}@tail"], answers[f"{kind}@tail"] = (
                scores[kind].copy(),
                answers[kind].copy(),
            )
            if which:
                ending[which], ending_first[which], _ = scores_and_answers(runner, last, shown)
    return scores, answers


def _simplest_within_error(grid: pd.DataFrame, n: int, criterion: str = "accuracy") -> Any:
    """The one-standard-error rule: of the cells whose `criterion` lies within one binomial standard
    error of the best, the simplest (one prompt before an ensemble, no calibration before any), then
    the best, then the cheaper (the whole text alone before text and ending), then macro-F1, then the
    earlier candidate. A small split cannot tell apart cells a point or two apart, and a calibration or
    an ensemble chosen on such an edge can cost more on new texts. Scoring the ending too fits nothing
    to the split, so it only has to be better."""
    best = grid[criterion].max()
    close = grid[grid[criterion] >= best - np.sqrt(best * (1 - best) / n) - 1e-12].assign(
        members=lambda g: g["prompt"].str.count(",") + 1,
        calibration_rank=lambda g: g["calibrate"].map(PRIORS.index),
    )
    order = ["members", "calibration_rank", criterion, "tail", "macro_f1"]
    return close.sort_values(order, ascending=[True, True, False, True, False], kind="stable").index[0]
