"""`sentiq tune-sampling` and `sentiq tune-prompt`: the searches run through the API, their grids shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from sentiq.choices import TEMPERATURES, TOP_KS
from sentiq.cli import groups as g
from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded
from sentiq.errors import OptionError
from sentiq.learn_settings import PromptTuneSettings, TuneSettings
from sentiq.settings import DataSpec, ModelSettings


def parse_grid(text: str | None, kind: type, default: Sequence[Any], name: str) -> tuple:
    """'0.2,0.7' -> (0.2, 0.7); values are checked as the sampling method would check them."""
    if not text:
        return tuple(default)
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise OptionError(f"{name}: '{text}' is not a comma-separated list of numbers") from exc
    bad = [v for v in values if (v <= 0 if kind is float else v < 1)]
    if not values or bad:
        raise OptionError(f"{name}: values must be {'above 0' if kind is float else 'at least 1'} (got {text})")
    return tuple(dict.fromkeys(values))


Temperatures = Annotated[
    str | None,
    o.option(default_shown=",".join(f"{t:g}" for t in TEMPERATURES), help="Comma-separated temperatures."),
]
TopKs = Annotated[
    str | None, o.option("--top-ks", default_shown=",".join(map(str, TOP_KS)), help="Comma-separated top-k values.")
]


@guarded
@g.grouped
def tune_sampling(
    models: ModelSettings = g.MODEL,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            "-p",
            help="The one prompt to search with (tune-prompt's choice is a good one). \\[default: classifier, or the "
            "first built-in prompt in the labels of --dataset]",
            show_default=False,
        ),
    ] = TuneSettings.prompt,
    temperatures: Temperatures = None,
    top_ks: TopKs = None,
    data: DataSpec = g.TUNING_DATA,
    n: o.TuningTexts = TuneSettings.n,
    sample: o.Sample = TuneSettings.sample,
    samples: Annotated[int, typer.Option(min=1, help="Answers per text, majority vote.")] = TuneSettings.samples,
    seed: o.TuningSeed = TuneSettings.seed,
    output_dir: o.TuningDir = TuneSettings.output_dir,
    json_out: o.Json = False,
) -> None:
    """Search temperature x top-k for the sampling method; evaluate --tuned uses the winner."""
    from sentiq.api import tune_sampling as run_tune

    with render.progress(enabled=not json_out) as start_task:
        result = run_tune(
            models,
            output_dir=output_dir,
            progress=start_task,
            temperatures=parse_grid(temperatures, float, TuneSettings.temperatures, "--temperatures"),
            top_ks=parse_grid(top_ks, int, TuneSettings.top_ks, "--top-ks"),
            dataset=data,
            n=n,
            sample=sample,
            samples=samples,
            prompt=prompt,
            seed=seed,
        )
    render.tuned(result, json_out)


@guarded
@g.grouped
def tune_prompt(
    models: ModelSettings = g.MODEL,
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts",
            help="Comma-separated candidates (names, NAME:VARIANT or .toml files). \\[default: every built-in prompt "
            "and label-word variant]",
            show_default=False,
        ),
    ] = PromptTuneSettings.prompts,
    data: DataSpec = g.TUNING_DATA,
    n: o.TuningTexts = PromptTuneSettings.n,
    sample: o.Sample = PromptTuneSettings.sample,
    ensemble: Annotated[
        int, typer.Option(min=0, help="Also try the mean of the best 2..N prompts.")
    ] = PromptTuneSettings.ensemble,
    max_tokens: m.MaxTokens = PromptTuneSettings.max_tokens,
    tail: Annotated[
        int, typer.Option(min=0, help="Also try every cell with each text's last N words scored beside it (0: not).")
    ] = PromptTuneSettings.tail,
    k: Annotated[
        int,
        typer.Option(
            "--k",
            min=0,
            help="Score with K demonstrations per class (as k-shot --scoring loglik): a choice that --tuned uses for "
            "k-shot, demonstrations included. 0: without.",
        ),
    ] = PromptTuneSettings.k,
    draws: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --k: try this many demonstration sets (drawn with seeds --seed, --seed + 1, ...) and choose "
            "among them too.",
        ),
    ] = PromptTuneSettings.draws,
    demos: m.Demos = PromptTuneSettings.demos,
    seed: o.TuningSeed = PromptTuneSettings.seed,
    output_dir: o.TuningDir = PromptTuneSettings.output_dir,
    json_out: o.Json = False,
) -> None:
    """Choose the prompt, label words, calibration and ending for a model by loglik accuracy; --tuned uses them."""
    from sentiq.api import tune_prompt as run_tune

    chosen = dict(
        dataset=data,
        prompts=prompts,
        n=n,
        sample=sample,
        ensemble=ensemble,
        tail=tail,
        k=k,
        draws=draws,
        demos=demos,
        max_tokens=max_tokens,
        seed=seed,
    )
    with render.progress(enabled=not json_out) as start_task:
        result = run_tune(
            models,
            output_dir=output_dir,
            progress=start_task,
            **chosen,
        )
    render.tuned(result, json_out)
