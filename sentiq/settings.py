"""What each command can be asked to do: the settings, their defaults and their checks, in one place.
Light to import (no torch, no pandas): the command line takes every option's default from here."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from numbers import Integral
from os import PathLike
from pathlib import Path
from typing import Any

from sentiq.abstention import abstention_checks, check_share
from sentiq.choices import (
    BACKENDS,
    CALIBRATIONS,
    DEFAULT_PROMPT,
    DEVICES,
    DTYPES,
    EMBEDDED,
    METHODS,
    SAMPLINGS,
    SCORINGS,
    Backend,
    Calibration,
    Device,
    DType,
    Method,
    SampleRule,
    Scoring,
    ending_name,
)
from sentiq.errors import OptionError
from sentiq.exit_options import check_max_loss
from sentiq.model_source import ModelSource, resolve_source


@dataclass(frozen=True)
class ModelSettings:
    model: str | None = None  # alias, hub id, folder or .gguf; None: SENTIQ_MODEL or the default
    device: Device = "auto"
    dtype: DType = "auto"
    batch_size: int | None = None  # texts per forward pass; None: as many as the token budget holds
    max_batch_tokens: int | None = None  # None: the device's default budget

    def __post_init__(self) -> None:
        """The same rules for the command line and the library."""
        if self.model is not None and not isinstance(self.model, str):
            raise TypeError(f"model must be a string (an alias, hub id or path), not {type(self.model).__name__}")
        if self.device not in DEVICES:
            raise OptionError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.dtype not in DTYPES:
            raise OptionError(f"--dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        limits = (
            ("batch_size", "--batch-size", self.batch_size),
            ("max_batch_tokens", "--batch-tokens", self.max_batch_tokens),
        )
        for keyword, option, value in limits:
            if value is None:
                continue
            if not isinstance(value, Integral) or isinstance(value, bool):  # numpy integers too
                raise TypeError(f"{keyword} must be an int, not {type(value).__name__}")
            if value < 1:
                raise OptionError(f"{option} must be at least 1")

    @cached_property
    def source(self) -> ModelSource:
        """The weights `model` names, resolved once (no network, nothing loaded): a model that is nowhere
        fails here, when first asked, and everything below is handed this source."""
        return resolve_source(self.model)


@dataclass(frozen=True)
class DataSpec:
    """How to read a dataset: where, which columns, and how its labels are encoded."""

    source: str = EMBEDDED  # the embedded sample, a local file, or a hub dataset id
    text_column: str | None = None  # None: 'text' (or the hub dataset's known column)
    label_column: str = "label"
    label_map: str | None = None  # "1=positive,0=negative"; None: 1/0, pos/neg, positive/negative
    split: str | None = None  # hub datasets: None means the test split


@dataclass(frozen=True)
class MethodConfig:
    """Everything that decides a method's predictions; recorded in every run's config.json."""

    method: Method = "loglik"
    k: int = 2  # k-shot: demonstrations per class
    scoring: Scoring = "generate"  # k-shot: decide by greedy generation (as the original study) or "loglik"
    prompt: str = DEFAULT_PROMPT  # built-in name, NAME:VARIANT or a .toml file; several comma-separated
    calibrate: Calibration = "none"  # label scores, or a generated answer's first token
    temperature: float = 0.7  # sampling
    top_k: int | None = 20  # sampling; None disables
    top_p: float | None = None  # sampling; None disables (no hidden nucleus default)
    samples: int = 5  # sampling: answers per text, majority vote
    max_new_tokens: int = 8  # generation methods: enough for "The sentiment is positive."
    max_tokens: int = 4096  # per text; longer texts lose their middle (counted as truncated)
    tail: int = 0  # also read each text's last `tail` words, the two views' label scores averaged; 0: off
    seed: int = 0  # demonstrations and sampling
    demo_seed: int | None = None  # k-shot: draw the demonstrations with this seed instead (tune-prompt --draws)
    demos: str | None = None  # k-shot: a labelled file to draw demonstrations from; None: the embedded IMDB pool
    tuned_from: str | None = None  # what --tuned applied, in words (recorded, not a setting)
    tuned_on: tuple[str, ...] = ()  # the split.csv files of the searches --tuned applied: evaluation leaves them out
    fit: str | None = None  # probe and --calibrate fitted: the folder `sentiq fit` wrote
    min_confidence: float | None = None  # below it, a text's label is 'uncertain' (abstention)
    target_accuracy: float | None = None  # the threshold chosen on the fit for this accuracy (95% bound)
    max_loss: float | None = None  # a fit with stages: its thresholds chosen again for this accuracy loss

    def __post_init__(self) -> None:
        if self.max_loss is not None:
            object.__setattr__(self, "max_loss", check_max_loss(self.max_loss))
        object.__setattr__(self, "min_confidence", check_share(self.min_confidence, "--min-confidence"))
        object.__setattr__(self, "target_accuracy", check_share(self.target_accuracy, "--target-accuracy"))
        if self.fit is not None and not isinstance(self.fit, (str, PathLike)):
            raise TypeError(f"fit must be a path to a fit folder, not {type(self.fit).__name__}")
        if isinstance(self.fit, PathLike):
            object.__setattr__(self, "fit", os.fspath(self.fit))
        checks = [
            (self.method in METHODS, f"unknown method '{self.method}': choose one of {', '.join(METHODS)}"),
            (self.scoring in SCORINGS, f"--scoring must be one of {', '.join(SCORINGS)}"),
            (self.calibrate in CALIBRATIONS, f"--calibrate must be one of {', '.join(CALIBRATIONS)}"),
            (self.k >= 1, "--k must be at least 1"),
            (self.temperature > 0, "--temperature must be above 0 (use zero-shot for greedy decoding)"),
            (self.top_k is None or self.top_k >= 1, "--top-k must be at least 1"),
            (self.top_p is None or 0 < self.top_p <= 1, "--top-p must be in (0, 1]"),
            (self.samples >= 1, "--samples must be at least 1"),
            (self.max_new_tokens >= 1, "--max-new-tokens must be at least 1"),
            (self.max_tokens >= 16, "--max-tokens must be at least 16"),
            (self.tail >= 0, "--tail must be 0 (off) or a number of words"),
            *self._fit_checks(),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)

    def _fit_checks(self) -> list[tuple[bool, str]]:
        """A fit is read by the probe or by fitted calibration of loglik, on one prompt, the text whole."""
        fitted = self.method == "probe" or self.calibrate == "fitted"
        return [
            (
                self.method != "probe" or self.fit is not None,
                "--method probe needs --fit FIT (a folder sentiq fit wrote)",
            ),
            (
                self.calibrate != "fitted" or self.fit is not None,
                "--calibrate fitted needs --fit FIT (a folder sentiq fit wrote)",
            ),
            (
                self.calibrate != "fitted" or self.method == "loglik",
                "--calibrate fitted applies to --method loglik (the label log-probabilities it was fitted on)",
            ),
            (
                self.method != "probe" or self.calibrate in ("none", "fitted"),
                "--method probe gives fitted probabilities already: leave --calibrate out",
            ),
            (self.fit is None or fitted, "--fit is read by --method probe or --calibrate fitted: name one of them"),
            (not fitted or "," not in self.prompt, "a fit reads one prompt: give --prompt one prompt, not an ensemble"),
            (not fitted or not self.tail, "a fit reads each text whole: leave --tail out"),
            *abstention_checks(self.min_confidence, self.target_accuracy, fitted),
            (
                self.max_loss is None or self.method == "probe",
                "--max-loss chooses again the thresholds of a fit with --exits or --then: give --method probe",
            ),
        ]

    @property
    def scores_labels(self) -> bool:
        """True when the decision comes from label scores (log-probabilities, or a probe's) rather than
        generated text."""
        return self.method in ("loglik", "probe") or (self.method == "k-shot" and self.scoring == "loglik")

    @property
    def calibrated(self) -> bool:
        """True when a label prior is divided out (fitted calibration is a fit's business)."""
        return self.calibrate not in ("none", "fitted")

    def relevant(self) -> dict[str, Any]:
        """The settings that matter for this method (for configs and tables)."""
        keep = {"method", "prompt", "calibrate", "max_tokens", "seed"} | ({"fit"} if self.fit is not None else set())
        keep |= {k for k in ("min_confidence", "target_accuracy", "max_loss") if getattr(self, k) is not None}
        if self.method == "k-shot":
            keep |= {"k", "scoring"} | ({"demo_seed"} if self.demo_seed is not None else set())
            keep |= {"demos"} if self.demos is not None else set()  # recorded when set: earlier runs resume
        if self.tail:  # recorded only when on: earlier runs still resume
            keep.add("tail")
        if not self.scores_labels:
            keep.add("max_new_tokens")
        if self.method == "sampling":
            keep |= {"temperature", "top_k", "top_p", "samples"}
        return {k: v for k, v in asdict(self).items() if k in keep}

    @property
    def demo_draw(self) -> int:
        """The seed the k-shot demonstrations are drawn with."""
        return self.seed if self.demo_seed is None else self.demo_seed

    def title(self) -> str:
        """A short name for tables and plot titles."""
        bits = [self.method]
        if self.method == "k-shot":
            bits.append(f"k={self.k} {self.scoring}")
        if self.method == "sampling":
            bits.append(f"T={self.temperature} top-k={self.top_k} x{self.samples}")
        if self.calibrate != "none" and self.method != "probe":
            bits.append(f"{self.calibrate}-calibrated")
        if self.tail:
            bits.append(ending_name(self.tail))
        return " ".join(bits)


@dataclass(frozen=True)
class ClassifySettings:
    """Where classify's texts go and how they are read."""

    output: Path | None = None  # .csv, .tsv, .jsonl or .parquet, written as batches are done
    text_column: str | None = None  # None: 'text'
    keep_columns: str = "text"  # input columns carried into the output, comma-separated
    chunk_size: int = 2_000  # texts read, sorted and batched together; memory grows with it, not the input
    resume: bool = False  # skip the ids already in --output
    overwrite: bool = False  # replace an --output that already holds labels

    def __post_init__(self) -> None:
        """The same rules for the command line and the library; a value of the wrong type names itself."""
        if self.output is not None and not isinstance(self.output, PathLike | str):
            raise TypeError(f"output must be a path, not {type(self.output).__name__}")
        for name in ("text_column", "keep_columns"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, not {type(value).__name__}")
        if not isinstance(self.chunk_size, Integral) or isinstance(self.chunk_size, bool):
            raise TypeError(f"chunk_size must be an int, not {type(self.chunk_size).__name__}")
        if self.chunk_size < 1:
            raise OptionError("--chunk-size must be at least 1")
        if self.resume and self.overwrite:
            raise OptionError("--resume continues the --output and --overwrite replaces it: give one")

    def keep(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.strip() for c in self.keep_columns.split(",") if c.strip()))


@dataclass(frozen=True)
class RaySettings:
    """Where the work runs: this process, or a Ray cluster through Ray Data."""

    backend: Backend = "local"  # this process, or a Ray cluster
    ray_address: str | None = None  # None: RAY_ADDRESS, or a local cluster started in this process
    workers: int = 2  # actors, each holding the model once
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0  # also the torch threads of each actor
    grow_timeout: float = 300.0  # seconds an autoscaling cluster is given to grow to fit the pool

    @property
    def shows_progress(self) -> bool:
        """Whether the backend draws its own progress (Ray Data's bars): then sentiq draws none beside it."""
        return self.backend == "ray"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(f"unknown backend '{self.backend}': choose {' or '.join(BACKENDS)}")
        if self.workers < 1 or self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise OptionError("--workers must be at least 1, --cpus-per-worker above 0, --gpus-per-worker 0 or more")


@dataclass
class EvalSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSpec = field(default_factory=DataSpec)
    methods: list[MethodConfig] = field(default_factory=lambda: [MethodConfig()])
    n: int | None = 200  # sample size; None: every text
    n_given: bool = True  # False: n is the default, and a dataset too small for it gives the largest sample it allows
    seed: int = 0  # the sample (methods carry their own)
    sample: SampleRule = "balanced"
    output_dir: Path | None = Path("results")  # None: in memory, nothing written
    run_id: str | None = None  # with several methods, each run gets '-<method>' appended
    resume: bool = False  # continue the run folders named by run_id
    ray: RaySettings = field(default_factory=RaySettings)

    def __post_init__(self) -> None:
        check_sample(self.sample)
        if not self.methods:
            raise OptionError("no method to evaluate: name at least one with --method")
        check_n(self.n, allow_all=True)


def check_n(n: object, allow_all: bool = False) -> None:
    if n is None and allow_all:
        return
    if not isinstance(n, Integral) or isinstance(n, bool):
        raise TypeError(f"n must be an int{' or None' if allow_all else ''}, not {type(n).__name__}")
    if n < 1:
        raise OptionError("--n must be at least 1")


def check_sample(rule: str) -> None:
    if rule not in SAMPLINGS:
        raise OptionError(f"unknown sample rule '{rule}': choose {' or '.join(SAMPLINGS)}")
