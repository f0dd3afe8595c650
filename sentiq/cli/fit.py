"""`sentiq fit`: a calibration and a probe fitted on labelled texts through the API, their cross-validated
scores and learning curve shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from rich import box
from rich.markup import escape
from rich.table import Table

from sentiq.cli import groups as g
from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded
from sentiq.errors import OptionError
from sentiq.learn_settings import FitSettings
from sentiq.settings import DataSpec, ModelSettings

if TYPE_CHECKING:
    from sentiq.api import FitResult

FitDataset = Annotated[
    str,
    o.option(
        "--dataset",
        panel=o.DATA_PANEL,
        help="The labelled texts to fit on: imdb-sample (its 1,000 embedded tuning reviews), or texts of your own "
        "(a table (.csv, .tsv, .jsonl, .json or .parquet) or a hub dataset id) in the prompt's label set; evaluate "
        "with the fit leaves them out.",
    ),
]
FIT_DATA = g.data(FitDataset)


@guarded
@g.grouped
def fit(
    models: ModelSettings = g.MODEL,
    prompt: Annotated[
        str, o.option("--prompt", "-p", help="The one prompt the model reads: its label set is the fit's.")
    ] = FitSettings.prompt,
    data: DataSpec = FIT_DATA,
    n: Annotated[
        int, o.option("--n", min=2, panel=o.DATA_PANEL, help="Texts to fit on, drawn with --seed by --sample.")
    ] = FitSettings.n,
    sample: o.Sample = FitSettings.sample,
    layer: Annotated[
        int | None,
        o.option(
            "--layer",
            min=1,
            default_shown="the last",
            help="The probe reads the state after this many layers; below the model's depth, classifying with it "
            "runs only those layers (faster).",
        ),
    ] = FitSettings.layer,
    exits: Annotated[
        str | None,
        o.option(
            "--exits",
            metavar="K[,K...]",
            help="Early exits: a probe at each of these layers too (before --layer, which is the last exit), each "
            "with a confidence threshold chosen on held-out predictions; classifying with the fit, a text the "
            "probe of an exit is sure of stops there.",
        ),
    ] = None,
    then: Annotated[
        str | None,
        o.option(
            "--then",
            metavar="MODEL",
            help="A cascade across models: a larger model (alias, hub id or path) whose probe takes the texts this "
            "model's last probe is unsure of; it loads beside this one when classifying.",
        ),
    ] = FitSettings.then,
    max_loss: Annotated[
        float | None,
        o.option(
            "--max-loss",
            default_shown="0.01",
            help="With --exits or --then: the held-out accuracy (and macro recall) the stages may give up against the "
            "last one's probe alone.",
        ),
    ] = FitSettings.max_loss,
    max_tokens: m.MaxTokens = FitSettings.max_tokens,
    name: Annotated[
        str | None,
        o.option("--name", default_shown="PROMPT-nN[-layerK][-exitsK-K][-then-MODEL]", help="The fit's folder name."),
    ] = FitSettings.name,
    seed: Annotated[int, o.option("--seed", help="Seed for the sample and the cross-validation folds.")] = 0,
    output_dir: Annotated[
        Path, o.option("--output-dir", "-o", help="Where fits are written (under fits/MODEL/LABELS/NAME).")
    ] = FitSettings.output_dir,
    overwrite: Annotated[bool, o.option("--overwrite", help="Replace a fit of the same name.")] = False,
    add: Annotated[
        list[Path] | None,
        o.option(
            "--add",
            panel=o.DATA_PANEL,
            help="A labelled file fitted on whole besides the --n texts (id, text, label: `sentiq suggest`'s "
            "output once its label column is filled in); repeat for several.",
        ),
    ] = None,
    json_out: o.Json = False,
) -> None:
    """Learn from labelled texts without training the model: a fitted calibration and a probe, for
    --calibrate fitted and --method probe."""
    from sentiq.api import fit as run_fit

    with render.progress(enabled=not json_out) as start_task:
        result = run_fit(
            models,
            dataset=data,
            output_dir=output_dir,
            progress=start_task,
            prompt=prompt,
            n=n,
            sample=sample,
            layer=layer,
            max_tokens=max_tokens,
            name=name,
            seed=seed,
            overwrite=overwrite,
            add=tuple(add or ()),
            exits=layers(exits),
            then=then,
            max_loss=max_loss,
        )
    fitted(result, json_out)


def early_exits(card: dict) -> None:
    """Each exit's threshold and expected share, and what the cascade gave on the held-out predictions."""
    table = Table(title="stages (held-out)", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("layer", "leaves above", "expected share", "probe's accuracy"):
        table.add_column(column, justify="right")
    for e in card["exits"]:
        above = "-" if e["threshold"] is None else f"{e['threshold']:.4f}"
        table.add_row(str(e["layer"]), above, f"{e['expected_share']:.0%}", f"{e['cv_accuracy']:.3f}")
    then = card.get("then")
    if then:
        table.add_row(
            f"{then['label']} {then['layer']}",
            "-",
            f"{then['expected_share']:.0%}",
            f"{then['probe']['cv_accuracy']:.3f}",
        )
    render.out.print(table)
    run = card["early_exit"]
    last = f"{then['label']} alone" if then else f"layer {card['layer']} alone"
    layers = f", {run['mean_layers']:.1f} layers per text" if "mean_layers" in run else ""
    render.out.print(
        f"staged: accuracy {run['cv_accuracy']:.3f} ({last}: {run['last_cv_accuracy']:.3f}, --max-loss {run['max_loss']:g})"
        f"{layers}, {run['expected_speedup']:.2f}x less computation",
        soft_wrap=True,
    )


def layers(text: str | None) -> tuple[int, ...]:
    """--exits '6,12' -> (6, 12); what they may be is FitSettings' to check."""
    if text is None:
        return ()
    try:
        parsed = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise OptionError(f"--exits: '{text}' is not a comma-separated list of layer numbers (e.g. 6,12)") from None
    return parsed


def fitted(result: FitResult, as_json: bool) -> None:
    card = result.card
    if as_json:
        render.print_json({"folder": str(result.folder), **{k: v for k, v in card.items() if k != "texts_sha256"}})
        return
    counts = ", ".join(f"{n} {label}" for label, n in card["counts"].items() if n)
    title = (
        f"sentiq fit {card['name']} · {card['model']['label']} · layer {card['layer']} of {card['depth']} · "
        f"{card['n']} texts ({counts})"
    )
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("cross-validated", "accuracy", "95% interval", "macro recall", "C"):
        table.add_column(column, justify="left" if column == "cross-validated" else "right")
    for what in ("calibration", "probe"):
        s = card[what]
        low, high = s["cv_accuracy_interval"]
        table.add_row(
            what, f"{s['cv_accuracy']:.3f}", f"{low:.3f}-{high:.3f}", f"{s['cv_macro_recall']:.3f}", f"{s['C']:g}"
        )
    render.out.print(table)
    if card["probe"].get("note"):
        render.note(card["probe"]["note"])
    curve = " · ".join(f"{p['n']}: {p['cv_macro_recall']:.3f}" for p in card["probe"].get("learning_curve", []))
    if curve:
        render.out.print(f"probe's learning curve (texts: macro recall): {curve}", soft_wrap=True)
    if card.get("exits"):
        early_exits(card)
    render.note(f"one pass over {card['n']} texts in {result.seconds:.1f} s; saved {result.folder}")
    render.note(
        f"use it: --method probe --fit {result.folder}, or --method loglik --calibrate fitted --fit {result.folder}"
    )
