"""A method made ready before any model loads: its prompt files read once, their shared label set,
k-shot's demonstrations drawn once, a fit read and checked once. Plain data: a run records it, and a Ray
worker receives it and binds it to its own engine (runner.make_runner)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from sentiq.abstention import Threshold, guaranteed
from sentiq.errors import OptionError
from sentiq.io.datasets import pool_for
from sentiq.methods.demonstrations import draw_demonstrations
from sentiq.methods.fit import Fit, load_fit
from sentiq.methods.prompts import Prompt, load_prompts
from sentiq.predictions import LabelSet
from sentiq.settings import MethodConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodPlan:
    config: MethodConfig
    prompts: tuple[Prompt, ...]
    labels: tuple[str, ...]  # the prompts' shared label set, in the order of their scores
    demos: tuple[tuple[str, str], ...] = ()  # k-shot's (text, label) demonstrations, as shown
    fit: Fit | None = None  # probe and fitted calibration: the fit, checked against the prompt
    threshold: Threshold | None = None  # abstention: below this confidence a text is 'uncertain'

    @property
    def label_set(self) -> LabelSet:
        fields: tuple[str, ...] = ()
        if self.exits and self.fit is not None:
            fields = ("exit", "exit_model") if self.fit.then is not None else ("exit",)
        return LabelSet(self.labels, self.prompts[0].ordered, fields)

    def title(self) -> str:
        """The method's short name, with the stages of a fit that has them (they label otherwise)."""
        if not self.exits or self.fit is None:
            return self.config.title()
        exits = f" exits {','.join(str(e.layer) for e in self.fit.exits)}" if self.fit.exits else ""
        then = f" then {self.fit.then.label}" if self.fit.then is not None else ""
        return f"{self.config.title()}{exits}{then}"

    @property
    def exits(self) -> bool:
        """The probe of a fit with stages (early exits, a second model): each text leaves at the first
        stage sure of it."""
        return self.config.method == "probe" and self.fit is not None and self.fit.staged

    def record(self) -> dict[str, object]:
        """What a run keeps of the plan: the prompts (content, not only names) and the demonstrations."""
        shown = [{"label": label, "text": text} for text, label in self.demos]
        return {
            "prompts": [p.record() for p in self.prompts],
            "labels": list(self.labels),
            **({"ordered": True} if self.prompts[0].ordered else {}),
            **({"demonstrations": shown} if self.config.method == "k-shot" else {}),
            **({"fit": self.fit.record()} if self.fit is not None else {}),
            **({"abstention": self.threshold.record()} if self.threshold is not None else {}),
        }


def plan_method(
    config: MethodConfig, prompts: Sequence[Prompt] | None = None, pool: pd.DataFrame | None = None
) -> MethodPlan:
    """The plan of `config`: its prompts (read here unless given), for k-shot demonstrations drawn from
    `pool` (by default --demos or the embedded pool, never the texts being classified), and its
    abstention threshold."""
    plan = _planned(config, prompts, pool)
    if config.max_loss is not None and plan.fit is not None:
        plan = replace(plan, fit=plan.fit.rechosen(config.max_loss))
    if config.min_confidence is not None:
        return replace(plan, threshold=Threshold(config.min_confidence))
    if config.target_accuracy is not None:
        assert plan.fit is not None  # MethodConfig refuses a target without a fit
        confidence, correct = plan.fit.held_out(probe=config.method == "probe")
        return replace(plan, threshold=guaranteed(confidence, correct, config.target_accuracy, len(plan.labels)))
    return plan


def _planned(config: MethodConfig, prompts: Sequence[Prompt] | None, pool: pd.DataFrame | None) -> MethodPlan:
    prompts = list(prompts) if prompts else load_prompts(config.prompt)
    labels = label_set(prompts)
    if config.fit is not None:
        fit = load_fit(config.fit)
        fit.check_prompt(prompts[0].record(), labels)
        if fit.card.get("max_tokens") != config.max_tokens:
            log.warning(
                f"--fit {config.fit} was fitted on texts cut at {fit.card.get('max_tokens')} tokens and this run cuts "
                f"them at {config.max_tokens} (--max-tokens): longer texts are read otherwise than it learned"
            )
        return MethodPlan(config, tuple(prompts), labels, fit=fit)
    if config.method != "k-shot":
        return MethodPlan(config, tuple(prompts), labels)
    pool = pool if pool is not None else pool_for(config, labels)
    demos = draw_demonstrations(pool, config.k, config.demo_draw, labels)
    return MethodPlan(config, tuple(prompts), labels, tuple(demos))


def label_set(prompts: Sequence[Prompt]) -> tuple[str, ...]:
    """The label set the prompts share: an ensemble averages or votes over the same labels."""
    labels = prompts[0].labels
    other = next((p for p in prompts if p.labels != labels), None)
    if other is not None:
        raise OptionError(
            f"prompts '{prompts[0].ref}' and '{other.ref}' have other label sets ({', '.join(labels)} / "
            f"{', '.join(other.labels)}): an ensemble needs one"
        )
    return labels
