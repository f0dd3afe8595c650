"""The `sentiq` command: options in, one library call, results rendered. No torch at import time."""

from __future__ import annotations

from typing import Annotated

import typer

from sentiq.cli.classify import classify
from sentiq.cli.compare import compare
from sentiq.cli.evaluate import evaluate
from sentiq.cli.fit import fit
from sentiq.cli.help import compact_types
from sentiq.cli.serve import serve
from sentiq.cli.suggest import suggest
from sentiq.cli.tune import tune_prompt, tune_sampling
from sentiq.version import __version__

compact_types()
app = typer.Typer(
    name="sentiq",
    help="Sentiment classification with small instruction-tuned LLMs (Qwen2.5), no training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sentiq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Label the sentiment of texts with Qwen2.5 Instruct models (positive/negative, or any label set a prompt declares): classify, evaluate, tune, fit, suggest, compare, serve."""


app.command()(classify)
app.command()(evaluate)
app.command("tune-sampling")(tune_sampling)
app.command("tune-prompt")(tune_prompt)
app.command()(fit)
app.command()(suggest)
app.command()(compare)
app.command()(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
