"""`sentiq suggest`: the texts of a pool a fit would learn most from, written to a file to label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded


@guarded
def suggest(
    fit: Annotated[str, o.option("--fit", help="The fit to suggest texts for (a folder `sentiq fit` wrote).")],
    pool: Annotated[
        Path,
        o.option(
            "--input",
            "-i",
            help="Unlabelled texts to choose from: a .txt (one per line), .csv, .tsv, .jsonl, .json or .parquet "
            "file, or a folder of them.",
        ),
    ],
    output: Annotated[
        Path, o.option("--output", "-o", help="Where to write the texts to label (.csv, with an empty label column).")
    ] = Path("next.csv"),
    n: Annotated[int, o.option("--n", min=1, help="How many texts to suggest.")] = 50,
    text_column: o.TextColumn = None,
    model: Annotated[
        str | None, o.option("--model", "-m", default_shown="the fit's", help="The model the fit was made on.")
    ] = None,
    device: o.Device = "auto",
    dtype: o.Dtype = "auto",
    overwrite: Annotated[bool, o.option("--overwrite", help="Replace an --output that exists.")] = False,
    json_out: o.Json = False,
) -> None:
    """The texts worth labelling next: those the fit's probe is least sure of, no two alike, none it was
    fitted on. Fill in their label column, then fit again with --add FILE."""
    from sentiq.api import suggest as pick_texts

    with render.progress(enabled=not json_out) as start_task:
        result = pick_texts(
            fit,
            pool,
            n=n,
            output=output,
            model=model,
            text_column=text_column,
            overwrite=overwrite,
            device=device,
            dtype=dtype,
            progress=start_task,
        )
    if json_out:
        render.print_json({"output": str(result.output), "picked": result.picked, "candidates": result.candidates})
        return
    left = f" ({result.left_out} left out: the fit's own, empty or repeated)" if result.left_out else ""
    render.note(f"saved {result.picked} of {result.candidates} candidate texts{left} in {result.output}")
    render.note(f"fill in their label column, then: sentiq fit ... --add {result.output}")
