"""What a user's labels teach on top of the frozen model: a multinomial logistic regression on the label
log-probabilities (fitted calibration) or on the hidden state at the answer position (a probe). Fitted
with scikit-learn (regularization chosen by cross-validation); applied in plain numpy, so a saved fit is
arrays, never a pickle."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiq.errors import DataError
from sentiq.results import Score

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))  # inverse regularization strengths tried
MAX_FOLDS = 5
MIN_TEXTS = 2  # of each label: the fewest a fit takes (two folds)
CURVE_SHARES = (0.125, 0.25, 0.5, 1.0)  # of the cross-validation's training folds
ARRAYS = ("mean", "scale", "coef", "intercept", "classes")


@dataclass(frozen=True)
class Linear:
    """A fitted multinomial logistic regression on standardized features. `classes` are the labels (as
    positions in the label set) the fit saw; the others get probability 0."""

    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)
    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray  # (classes,)
    classes: np.ndarray  # (classes,) int
    n_labels: int
    held_out: np.ndarray | None = None  # (texts, labels): each fitted text's probabilities from the folds without it

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        kept = {"held_out": self.held_out} if self.held_out is not None else {}
        return {f"{prefix}_{name}": value for name, value in {**self.parts(), **kept}.items()}

    def parts(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    def logprobs(self, x: np.ndarray) -> np.ndarray:
        """log P(label | features): (texts, labels), -inf for labels the fit never saw."""
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        out = np.full((len(z), self.n_labels), -np.inf)
        out[:, self.classes] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, n_labels: int) -> Linear:
        parts = {name: np.asarray(arrays[f"{prefix}_{name}"]) for name in ARRAYS}
        held_out = arrays.get(f"{prefix}_held_out")  # fits of sentiq 0.4 have none
        linear = cls(**parts, n_labels=n_labels, held_out=None if held_out is None else np.asarray(held_out))
        features = len(linear.mean)
        shapes_agree = (
            linear.scale.shape == (features,)
            and linear.coef.shape == (len(linear.classes), features)
            and linear.intercept.shape == (len(linear.classes),)
            and set(linear.classes.tolist()) <= set(range(n_labels))
            and (linear.held_out is None or (linear.held_out.ndim == 2 and linear.held_out.shape[1] == n_labels))
        )
        if not shapes_agree:
            raise ValueError(f"{prefix} arrays of mismatched shapes")
        if not all(np.isfinite(getattr(linear, name)).all() for name in ARRAYS[:4]):
            raise ValueError(f"{prefix} weights that are not finite (NaN or infinity)")
        return linear


def check_labels(y: Sequence[int], labels: Sequence[str]) -> int:
    """The folds the texts allow; a fit on one label, or with a label of fewer than 2 texts, is refused."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=len(labels))
    held = [(labels[i], int(c)) for i, c in enumerate(counts) if c]
    if len(held) < 2:
        only = held[0][0] if held else "nothing"
        raise DataError(f"every fitting text is labelled {only}: a fit needs texts of at least two labels")
    label, fewest = min(held, key=lambda lc: lc[1])
    if fewest < MIN_TEXTS:
        raise DataError(
            f"label '{label}' has 1 fitting text: cross-validation needs at least {MIN_TEXTS} of each label "
            "(give more texts)"
        )
    return min(MAX_FOLDS, fewest)


def fit_linear(
    x: np.ndarray, y: np.ndarray, labels: Sequence[str], seed: int, curve: bool = False
) -> tuple[Linear, Score]:
    """A logistic regression of `y` (positions in `labels`) on `x`, standardized, C chosen by
    cross-validated log loss; its cross-validated score (nested: the choice of C is part of what is
    scored, where every label has NESTED_MIN texts; else at the C chosen on all texts, and said so) and,
    with `curve`, the learning curve at the chosen C. scikit-learn's warnings about small folds are
    held back: what they warn of is decided here and recorded in the Score."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = check_labels(y, labels)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = _search(y, folds, seed)
        search.fit(x, y)
        c = float(search.best_params_["logisticregression__C"])
        inner = _inner_folds(y, folds)
        nested = inner >= 2
        scored = _search(y, inner, seed) if nested else _pipeline(c)
        probs = _all_labels(cross_val_predict(scored, x, y, cv=split, method="predict_proba"), y, len(labels))
        held_out = probs.argmax(axis=1)
        points = _curve(x, y, c, split) if curve else []
    score = Score(
        C=c,
        folds=folds,
        n=len(y),
        accuracy=float(accuracy_score(y, held_out)),
        macro_recall=float(balanced_accuracy_score(y, held_out)),
        curve=points,
        nested=nested,
    )
    best = search.best_estimator_
    scaler, model = best.named_steps["standardscaler"], best.named_steps["logisticregression"]
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2 and coef.shape[0] == 1:  # sklearn's binary form: one row, the second class's
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    linear = Linear(scaler.mean_, scale, coef, intercept, model.classes_.astype(np.int64), len(labels), probs)
    return linear, score


def _all_labels(probs: np.ndarray, y: np.ndarray, n_labels: int) -> np.ndarray:
    """predict_proba's columns (the labels `y` holds, in order) placed among every label's."""
    out = np.zeros((len(probs), n_labels))
    out[:, np.unique(y)] = probs
    return out


def _search(y: np.ndarray, folds: int, seed: int) -> object:
    """C chosen from C_GRID by `folds`-fold stratified cross-validated log loss (every label in the loss,
    so a fold's test texts need not hold them all)."""
    from sklearn.metrics import log_loss, make_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    loss = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba", labels=np.unique(y))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return GridSearchCV(_pipeline(1.0), {"logisticregression__C": list(C_GRID)}, cv=split, scoring=loss)


def _inner_folds(y: np.ndarray, folds: int) -> int:
    """The folds a search inside each of `folds` training sets can use: the fewest texts of a label that
    every training set holds (a stratified split leaves out at most ceil(count / folds) of each)."""
    counts = np.bincount(np.asarray(y, dtype=int))
    fewest = int(counts[counts > 0].min())
    return min(MAX_FOLDS, fewest - -(-fewest // folds))


def _pipeline(c: float) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def _curve(x: np.ndarray, y: np.ndarray, c: float, split: object) -> list[tuple[int, float]]:
    """Cross-validated macro recall at a few training sizes (the chosen C): whether more labels would pay."""
    from sklearn.model_selection import learning_curve

    sizes, _, test = learning_curve(  # a small subset can hold one label: that size is left out (nan)
        _pipeline(c),
        x,
        y,
        train_sizes=list(CURVE_SHARES),
        cv=split,
        scoring="balanced_accuracy",
        shuffle=True,
        random_state=0,
        error_score=np.nan,
    )
    return [(int(n), float(row.mean())) for n, row in zip(sizes, test) if not np.isnan(row).any()]
