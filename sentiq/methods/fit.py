"""A saved fit, checked and loaded: its card, its calibration and probe, and the early exits before the
probe's layer when it was fitted with them. Plain data: a Ray worker receives it inside the method's plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sentiq.errors import OptionError
from sentiq.methods.exits import Exit, Then, cascaded, choose_thresholds
from sentiq.methods.fitted import Linear
from sentiq.model_source import ModelSource


@dataclass(frozen=True)
class Fit:
    """A saved fit: its card (what it was fitted with and on), both regressions, and its early exits."""

    path: str
    card: dict
    calibration: Linear
    probe: Linear
    gold: np.ndarray | None = None  # the fitted texts' labels (positions in the set), for the held-out predictions
    exits: tuple[Exit, ...] = ()  # the probes before `layer`, shallowest first; none: the probe reads `layer` alone
    then: Then | None = None  # a second model for the texts the probe at `layer` is unsure of

    @property
    def staged(self) -> bool:
        """Texts may leave before the last stage: early exits, or a second model after this one."""
        return bool(self.exits) or self.then is not None

    @property
    def stages(self) -> list[Linear]:
        """Every stage's probe in order: the early exits', the one at `layer`, the second model's."""
        return [*(e.probe for e in self.exits), self.probe, *([self.then.probe] if self.then is not None else [])]

    @property
    def thresholds(self) -> list[float]:
        """The threshold of every stage but the last: a text more confident than it leaves there."""
        return [e.threshold for e in self.exits] + ([self.then.threshold] if self.then is not None else [])

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card["labels"])

    @property
    def layer(self) -> int:
        return int(self.card["layer"])

    @property
    def texts(self) -> frozenset[str]:
        """The digests (text.text_digest) of the texts it was fitted on."""
        return frozenset(self.card["texts_sha256"])

    def check_prompt(self, record: dict, labels: Sequence[str]) -> None:
        """Refuse a prompt other than the one fitted with (by content: a renamed copy is the same prompt),
        or its labels in another order (the fit's columns are in the order it was fitted in)."""
        fitted = self.card["prompt"]
        if record["hash"] == fitted["hash"] and tuple(labels) != self.labels:
            raise OptionError(
                f"--fit {self.path} scores the labels in the order {', '.join(self.labels)}, and prompt "
                f"'{record['ref']}' lists them {', '.join(labels)}: list them in the fit's order, or fit this prompt"
            )
        if record["hash"] != fitted["hash"]:
            raise OptionError(
                f"--fit {self.path} was fitted with prompt '{fitted['ref']}' (#{fitted['hash']}), not "
                f"'{record['ref']}' (#{record['hash']}): give --prompt {fitted['ref']}, or fit this prompt"
            )

    def check_source(self, source: ModelSource) -> None:
        """Before the model loads: refuse local weights other than those fitted on, by their digest (a
        hub model's digest is its commit, known once it is loaded: make_runner checks it then)."""
        from sentiq.io.fits import model_digest

        if source.kind != "hub":
            self.check_model(model_digest(source.kind, source.ref, None), source.label)

    def check_model(self, digest: str, label: str) -> None:
        fitted = self.card["model"]
        if digest != fitted["weights_digest"]:
            raise OptionError(
                f"--fit {self.path} was fitted on model {fitted['label']} ({fitted['source']}), not {label}: "
                "a fit reads one model's states; fit this model, or load that one"
            )

    @property
    def prompt_spec(self) -> str:
        """What --prompt takes to load the fit's prompt again (a file by the path it was read from)."""
        record = self.card["prompt"]
        if record.get("origin", "built-in") == "built-in":
            return str(record["ref"])
        _, colon, variant = str(record["ref"]).partition(":")
        return f"{record['origin']}{colon}{variant}"

    def held_out(self, probe: bool) -> tuple[np.ndarray, np.ndarray]:
        """The probe's (or the calibration's) held-out predictions, through the early exits where it has
        them: each fitted text's confidence in the label it was given, and whether that label was right.
        Refused for a fit that kept none."""
        linear = self.probe if probe else self.calibration
        if linear.held_out is None or self.gold is None:
            raise OptionError(
                f"--fit {self.path} keeps no held-out predictions (fitted by sentiq {self.card.get('versions', {}).get('sentiq', 'before 0.5')}): "
                "fit again to use --target-accuracy"
            )
        if len(self.gold) != len(linear.held_out):
            raise OptionError(f"--fit {self.path}: its held-out predictions do not match its labels: fit again")
        probs = linear.held_out
        if probe and self.staged:
            _, probs = cascaded([stage.held_out for stage in self.stages], self.thresholds)
        given = probs.argmax(axis=1)
        return probs[np.arange(len(given)), given], given == self.gold

    def rechosen(self, max_loss: float) -> Fit:
        """The stages' thresholds chosen again on the held-out predictions for another accuracy loss (no
        pass: the card keeps each stage's cost)."""
        if not self.staged:
            raise OptionError(
                f"--fit {self.path} has no early exits and no second model: --max-loss has nothing to choose "
                "(fit with --exits or --then)"
            )
        # one model's layers are alike: its layers are its costs (what a card without costs falls back on)
        costs = [float(e.get("cost", e["layer"])) for e in self.card["exits"]]
        if self.then is not None:
            if "cost" not in self.card["then"]:
                raise OptionError(f"--fit {self.path} keeps no cost per stage: fit again to use --max-loss with it")
            costs.append(float(self.card["then"]["cost"]))
        assert self.gold is not None  # a fit with stages keeps its labels
        chosen = choose_thresholds([stage.held_out for stage in self.stages], self.gold, costs, max_loss)
        exits = tuple(replace(e, threshold=t) for e, t in zip(self.exits, chosen.thresholds))
        then = replace(self.then, threshold=chosen.thresholds[-1]) if self.then is not None else None
        return replace(self, exits=exits, then=then)

    def record(self) -> dict:
        """What a run keeps of the fit it used."""
        keep = ("name", "layer", "n", "card_sha256")
        exits = {"exits": [e.layer for e in self.exits]} if self.exits else {}
        then = {"then": self.then.label} if self.then is not None else {}
        chosen = {"thresholds": self.thresholds} if self.staged else {}
        return {"path": self.path, **{k: self.card[k] for k in keep}, **exits, **then, **chosen}


def load_fit(path: str) -> Fit:
    """The fit at `path`, its files checked (io.fits) and its arrays read into the two regressions."""
    from sentiq.io.fits import read_fit

    card, arrays = read_fit(Path(path))
    try:
        n_labels = len(card["labels"])
        int(card["layer"])
        card["prompt"]["hash"], card["model"]["weights_digest"], card["texts_sha256"]  # noqa: B018
        exits = tuple(
            Exit(int(e["layer"]), Linear.from_arrays(arrays, f"exit{int(e['layer'])}", n_labels), float(e["threshold"]))
            for e in card.get("exits", [])[:-1]  # the last exit is the probe
        )
        then = None
        if "then" in card:
            second = card["then"]
            threshold = float(card["exits"][-1]["threshold"])
            then = Then(second, int(second["layer"]), Linear.from_arrays(arrays, "then_probe", n_labels), threshold)
        return Fit(
            str(path),
            card,
            Linear.from_arrays(arrays, "calibration", n_labels),
            Linear.from_arrays(arrays, "probe", n_labels),
            arrays.get("gold"),
            exits,
            then,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OptionError(f"--fit {path}: its card or weights are not a usable fit ({exc}): fit again") from None
