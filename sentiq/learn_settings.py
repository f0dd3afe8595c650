"""The settings of the commands that learn from labelled texts: the prompt and sampling searches, and
fit. Light to import, as settings is."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from numbers import Integral
from os import PathLike
from pathlib import Path

from sentiq.choices import DEFAULT_PROMPT, TEMPERATURES, TOP_KS, SampleRule
from sentiq.errors import OptionError
from sentiq.exit_options import MAX_LOSS, check_exits, check_max_loss
from sentiq.settings import DataSpec, check_n, check_sample


@dataclass(frozen=True)
class TuneSettings:
    temperatures: tuple[float, ...] = TEMPERATURES
    top_ks: tuple[int, ...] = TOP_KS
    n: int = 40  # tuning texts, from the embedded train tuning reviews or `data`
    samples: int = 1  # answers per text while tuning: one keeps the grid cheap
    prompt: str | None = None  # one prompt (tune-prompt's choice is a good one); None: the label set's first built-in
    data: DataSpec = field(default_factory=DataSpec)  # the embedded tuning reviews, or labelled texts of one's own
    sample: SampleRule = "balanced"
    seed: int = 0
    output_dir: Path = Path("results")

    def __post_init__(self) -> None:
        check_sample(self.sample)
        check_n(self.n)


@dataclass(frozen=True)
class PromptTuneSettings:
    prompts: str | None = None  # comma-separated prompt refs; None: every built-in prompt and label-word variant
    n: int = 400  # tuning texts, from the embedded train tuning reviews or `data`: 200 cannot tell 2 points apart
    ensemble: int = 3  # also score the mean of the best this many prompts (below 2: no ensembles)
    tail: int = 80  # also try every cell with the texts' last this many words scored beside them; 0: not
    k: int = 0  # score with k demonstrations per class, as k-shot --scoring loglik: a choice for k-shot; 0: none
    draws: int = 1  # with k: demonstration sets tried, drawn with seeds seed, seed + 1, ...
    max_tokens: int = 4096  # per text, as evaluate's --max-tokens
    data: DataSpec = field(default_factory=DataSpec)  # the embedded tuning reviews, or labelled texts of one's own
    sample: SampleRule = "balanced"
    demos: str | None = None  # with k: a labelled file to draw demonstrations from, as k-shot's --demos
    seed: int = 0
    output_dir: Path = Path("results")

    def __post_init__(self) -> None:
        check_sample(self.sample)
        check_n(self.n)
        if self.draws > 1 and not self.k:
            raise OptionError("--draws needs --k: without demonstrations there is nothing to draw")


@dataclass(frozen=True)
class FitSettings:
    """What `sentiq fit` reads and where it writes; the model and the prompt's other settings apart."""

    data: DataSpec = field(default_factory=DataSpec)  # the embedded tuning reviews, or labelled texts of one's own
    prompt: str = DEFAULT_PROMPT  # one prompt: its label set is the fit's, its rendering what the model reads
    max_tokens: int = 4096  # per text, as evaluate's --max-tokens (the fit records it; its users apply it)
    n: int = 256  # fitting texts; the learning curve says whether more would pay
    sample: SampleRule = "balanced"
    seed: int = 0  # the sample and the cross-validation folds
    layer: int | None = None  # the probe reads the state after this many layers; None: every layer
    name: str | None = None  # the fit's folder name; None: <prompt>-n<N>[-layer<K>]
    output_dir: Path = Path("results")  # fits go to <output_dir>/fits/<model>/<labels>/<name>/
    overwrite: bool = False  # replace a fit of the same name
    add: tuple[str, ...] = ()  # labelled files fitted on besides the sample, whole (suggest's, filled in)
    exits: tuple[int, ...] = ()  # early exits: probes at these layers too, before `layer` (the last exit)
    max_loss: float | None = None  # with exits or then: the cascade's held-out accuracy stays within this
    # of the last stage's (None: MAX_LOSS)
    then: str | None = None  # a second, larger model whose probe takes the texts this one is unsure of

    def __post_init__(self) -> None:
        added = [self.add] if isinstance(self.add, str | PathLike) else self.add
        if not isinstance(added, list | tuple) or not all(isinstance(a, str | PathLike) for a in added):
            raise TypeError(f"add must be a path or a list of paths, not {type(self.add).__name__}")
        object.__setattr__(self, "add", tuple(os.fspath(a) for a in added))
        if not isinstance(self.prompt, str):
            raise TypeError(
                f"prompt must be a string (a prompt's name or .toml file), not {type(self.prompt).__name__}"
            )
        check_sample(self.sample)
        check_n(self.n)
        if self.layer is not None and (not isinstance(self.layer, Integral) or isinstance(self.layer, bool)):
            raise TypeError(f"layer must be an int or None, not {type(self.layer).__name__}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {type(self.name).__name__}")
        if self.name is not None and not self.name.strip():
            raise OptionError("--name is empty: give the fit a name, or leave --name out for the default")
        if self.max_tokens < 16:
            raise OptionError("--max-tokens must be at least 16")
        if "," in self.prompt:
            raise OptionError("a fit reads one prompt: give --prompt one prompt, not an ensemble")
        if self.layer is not None and self.layer < 1:
            raise OptionError("--layer must be at least 1")
        object.__setattr__(self, "exits", check_exits(self.exits, self.layer))
        if self.then is not None and not isinstance(self.then, str):
            raise TypeError(f"then must be a string (a model's alias, hub id or path), not {type(self.then).__name__}")
        if self.then is not None and not self.then.strip():
            raise OptionError("--then is empty: name the model that takes the texts the first is unsure of")
        if self.max_loss is not None and not self.exits and self.then is None:
            raise OptionError("--max-loss is the accuracy early exits may give up: give --exits or --then with it")
        object.__setattr__(self, "max_loss", check_max_loss(MAX_LOSS if self.max_loss is None else self.max_loss))
