"""Prompts, answer parsing, voting, calibration and demonstrations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import parse_label

from sentiq.errors import OptionError
from sentiq.methods.demonstrations import DEMO_MAX_WORDS, draw_demonstrations
from sentiq.methods.generation import decided_probs, vote
from sentiq.methods.plan import plan_method
from sentiq.methods.prompts import build_template, load_prompt
from sentiq.methods.runner import make_runner
from sentiq.methods.texts import prepare
from sentiq.settings import MethodConfig
from sentiq.text import clean_text


@pytest.mark.parametrize(
    "answer,label",
    [
        ("Positive", "positive"),
        ("negative.", "negative"),
        ("The sentiment is POSITIVE.", "positive"),
        ("**Negative**", "negative"),
        ("positive or negative", None),
        ("I cannot tell", None),
        ("", None),
        ("positively", None),
    ],
)
def test_parse_label(answer: str, label: str | None) -> None:
    assert parse_label(answer) == label


def _vote(*answers: str, probs=None, sampled: bool = True):
    probs = probs or [None] * len(answers)
    return vote([(a, parse_label(a), p) for a, p in zip(answers, probs)], sampled=sampled)


def test_vote_majority_ties_and_invalid() -> None:
    assert _vote("Positive", "negative", "positive").label == "positive"
    # sampled votes are shares with half a pseudo-vote per label: (2 + 0.5) / (3 + 1)
    assert _vote("Positive", "negative", "positive").p_positive == pytest.approx(2.5 / 4)
    assert _vote("negative", "positive").label == "negative"  # tie: the earliest valid answer
    assert _vote("Positive").p_positive is None  # one answer that never committed by a token: no probability
    assert _vote("meh", "positive").label == "positive"  # invalid answers do not vote
    none = _vote("meh", "???")
    assert none.label == "invalid" and none.p_positive is None and none.answer == "meh | ???"


def test_vote_never_gives_a_label_zero() -> None:
    """Unanimous samples leave the other label a share above 0, so log loss stays finite."""
    unanimous = _vote(*["negative"] * 5)
    assert unanimous.label == "negative"
    assert unanimous.scores == pytest.approx({"positive": 0.5 / 6, "negative": 5.5 / 6})
    assert 0 < unanimous.p_positive < 0.1


def test_vote_of_greedy_answers_averages_where_they_committed() -> None:
    one = _vote("Positive", probs=[np.array([0.8, 0.2])], sampled=False)
    assert one.label == "positive" and one.p_positive == pytest.approx(0.8)
    ensemble = _vote("Positive", "negative", probs=[np.array([0.9, 0.1]), np.array([0.4, 0.6])], sampled=False)
    assert ensemble.label == "positive"  # a tie of votes goes to the earliest
    assert ensemble.scores == pytest.approx({"positive": 0.65, "negative": 0.35})
    # a member that committed by no token is left out of the mean, an invalid one too
    partial = _vote(
        "Positive", "meh", "positive", probs=[np.array([0.7, 0.3]), np.array([0.1, 0.9]), None], sampled=False
    )
    assert partial.p_positive == pytest.approx(0.7)


def test_decided_probs_reads_each_labels_likeliest_spelling() -> None:
    """A label's probability is its likeliest spelling's (Positive, positive, ' positive'), normalised over
    the labels: the label a greedy answer chose is the most probable, however its rivals' spellings add up."""
    decided = np.log(np.array([0.3, 0.2, 0.05, 0.15]))  # tokens naming labels 0, 1, 0, 1
    assert decided_probs(decided, [0, 1, 0, 1], 2) == pytest.approx([0.3 / 0.5, 0.2 / 0.5])
    assert decided_probs(None, [0, 1], 2) is None
    three = decided_probs(np.array([0.0, -50.0]), [2, 0], 3)  # a label with no token gets 0
    assert three == pytest.approx([np.exp(-50) / (1 + np.exp(-50)), 0, 1 / (1 + np.exp(-50))])


def test_clean_text_breaks_and_control_characters() -> None:
    assert clean_text("  Great<br /><br/>film\x00\x07 ") == "Great\n\nfilm"


def test_template_splits_around_review(tiny_lm) -> None:
    prompt = load_prompt("classifier")
    tpl = build_template(tiny_lm.tokenizer, prompt)
    full = tiny_lm.tokenizer.apply_chat_template(
        [{"role": "system", "content": prompt.fill(prompt.system)}, {"role": "user", "content": "fine"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert tpl.full("fine") == full
    assert tpl.gap == "\n" and not tpl.prefix.endswith("\n")
    assert tpl.suffix.endswith("<|im_start|>assistant\n")


def test_template_with_demonstrations_answers_with_label_words(tiny_lm) -> None:
    prompt = load_prompt("one-word:capital")
    tpl = build_template(tiny_lm.tokenizer, prompt, [("good", "positive"), ("bad", "negative")])
    assert "<|im_start|>assistant\nPositive<|im_end|>" in tpl.prefix
    assert "Review: good\n\nAnswer with one word: Positive or Negative." in tpl.prefix
    assert tpl.prefix.count("<|im_start|>user") == 3


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(method="nope"), "unknown method"),
        (dict(temperature=0), "temperature must be above 0"),
        (dict(top_k=0), "top-k must be at least 1"),
        (dict(samples=0), "samples must be at least 1"),
        (dict(k=0), "k must be at least 1"),
        (dict(top_p=1.5), "top-p"),
        (dict(calibrate="always"), "--calibrate must be one of none, contextual, domain, batch"),
        (dict(tail=-1), "--tail must be 0"),
    ],
)
def test_method_config_rejects_nonsense(kwargs: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        MethodConfig(**kwargs)


def _pool(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(2 * n)],
            "text": [f"text {i}" for i in range(2 * n)],
            "label": ["positive", "negative"] * n,
        }
    )


def test_demonstrations_balanced_seeded_and_alternating() -> None:
    a = draw_demonstrations(_pool(), 3, seed=1)
    assert sorted(lab for _, lab in a) == ["negative"] * 3 + ["positive"] * 3
    assert a == draw_demonstrations(_pool(), 3, seed=1)
    assert a != draw_demonstrations(_pool(), 3, seed=2)
    orders = {tuple(lab for _, lab in draw_demonstrations(_pool(), 3, seed=s)) for s in range(10)}
    # labels alternate (no label closes the prompt twice in a row); the seed picks which comes first
    assert orders == {("positive", "negative") * 3, ("negative", "positive") * 3}


def test_demonstrations_prefer_short_texts_and_fall_back_to_the_shortest() -> None:
    long = " ".join(["word"] * (DEMO_MAX_WORDS + 1))
    pool = pd.DataFrame(
        {
            "id": [str(i) for i in range(8)],
            "text": ["short good", "short bad", "fine", "poor", long + " good", long + " bad", long, long + " x"],
            "label": ["positive", "negative"] * 4,
        }
    )
    for seed in range(5):
        assert {t for t, _ in draw_demonstrations(pool, 2, seed)} == {"short good", "short bad", "fine", "poor"}
    # three per class need one long text each: the three shortest of each class are taken
    drawn = {t for t, _ in draw_demonstrations(pool, 3, seed=0)}
    assert drawn == {"short good", "fine", long, "short bad", "poor", long + " bad"}


def test_k_above_pool_is_refused() -> None:
    with pytest.raises(
        OptionError,
        match=r"--k 7 needs 7 demonstrations of every label; the pool has 6 .positive. \(positive 6, negative 6\)",
    ):
        draw_demonstrations(_pool(), 7, seed=0)


def test_loglik_probabilities_and_labels_agree(engine) -> None:
    clf = make_runner(engine, plan_method(MethodConfig(method="loglik")))
    preds = clf.predict(["a great film", "dull boring mess", "fine"])
    for p in preds:
        assert p.label == ("positive" if p.p_positive >= 0.5 else "negative")
        assert p.tokens > 0 and p.p_positive_raw is None


def test_calibration_divides_out_the_content_free_prior(engine) -> None:
    raw = make_runner(engine, plan_method(MethodConfig(method="loglik"))).predict(["a great film", "dull"])
    clf = make_runner(engine, plan_method(MethodConfig(method="loglik", calibrate="contextual")))
    cal = clf.predict(["a great film", "dull"])
    prior = clf.prior
    assert prior.sum() == pytest.approx(1.0)
    for r, c in zip(raw, cal):
        assert c.p_positive_raw == pytest.approx(r.p_positive)
        odds = (r.p_positive / (1 - r.p_positive)) / (prior[0] / prior[1])
        assert c.p_positive == pytest.approx(odds / (1 + odds))


def test_tail_averages_each_long_text_with_its_ending(engine) -> None:
    from sentiq.methods.calibration import log_softmax

    long = "a slow start " * 10 + "but a great film in the end"
    texts = [long, "dull", long.replace("great", "awful")]
    whole = make_runner(engine, plan_method(MethodConfig(method="loglik")))
    clf = make_runner(engine, plan_method(MethodConfig(method="loglik", tail=5)))
    tokens = np.zeros(len(texts), dtype=np.int64)
    done = list(clf.label_logprob_batches(texts, tokens))
    seen = [i for d in done for i in d.indices]
    got = clf.label_logprobs(texts)
    assert all(np.array_equal(d.result, got[d.indices]) for d in done)
    ends = whole.label_logprobs(["great film in the end", "awful film in the end"])
    expected = (whole.label_logprobs(texts)[[0, 2]] + log_softmax(ends)) / 2
    assert got[[0, 2]] == pytest.approx(expected, abs=1e-5)
    assert got[1] == pytest.approx(whole.label_logprobs(["dull"])[0], abs=1e-5)  # no longer than its ending
    short = clf.label_logprobs(["dull", "N/A"], np.zeros(2, dtype=np.int64))  # e.g. content-free inputs
    assert short == pytest.approx(whole.label_logprobs(["dull", "N/A"]), abs=1e-5)
    assert sorted(seen) == [0, 1, 2]  # each text reported once, when its last pass is done
    (b,) = clf.bound
    assert tokens[1] == len(b.body(engine, "dull"))
    assert tokens[0] == len(b.body(engine, long)) + len(b.body(engine, "great film in the end"))
    assert "tail" not in MethodConfig(method="loglik").relevant()  # off: not recorded, earlier runs resume
    assert MethodConfig(method="k-shot", scoring="loglik", tail=5).relevant()["tail"] == 5
    assert MethodConfig(method="zero-shot", tail=5).title() == "zero-shot +last 5 words"


def test_generation_hears_the_ending_at_its_first_step(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from sentiq.methods.calibration import log_softmax

    long = "a slow start " * 10 + "but a great film in the end"
    cfg = MethodConfig(method="zero-shot", tail=5, max_new_tokens=2)
    clf = make_runner(engine, plan_method(cfg))
    mixes: list = []
    generate = engine.generate_batches
    monkeypatch.setattr(engine, "generate_batches", lambda *a: mixes.append(a[4]) or generate(*a))
    preds = clf.predict([long, "dull"])
    (b,) = clf.bound
    ids, ending = mixes[0]
    assert ids == [lab[0] for lab in b.label_ids]
    expected = log_softmax(engine.score(b.prefix, [b.body(engine, "great film in the end")], [[i] for i in ids]))
    assert ending[0] == pytest.approx(expected[0]) and np.isnan(ending[1]).all()  # "dull" is its own ending
    assert preds[1].answer == make_runner(engine, plan_method(replace(cfg, tail=0))).predict(["dull"])[0].answer
    monkeypatch.undo()
    batch = make_runner(engine, plan_method(replace(cfg, calibrate="batch")))
    batch.predict([long, "dull"])
    firsts = [[i] for i in ids]
    whole = log_softmax(engine.score(b.prefix, [b.body(engine, t) for t in (long, "dull")], firsts))
    whole[0] = (whole[0] + expected[0]) / 2  # the prior is taken from the views as the answers hear them
    assert batch.prior[0] == pytest.approx(np.exp(whole).mean(axis=0), abs=1e-4)


def test_long_text_loses_its_middle(engine) -> None:
    clf = make_runner(engine, plan_method(MethodConfig(method="loglik", max_tokens=16)))
    text = "great " * 10 + "MIDDLE " * 50 + "dull " * 10
    ((fitted, truncated),) = prepare(engine, [text], clf.config.max_tokens)
    assert truncated and "[...]" in fitted and "MIDDLE" not in fitted.split("[...]")[0][-10:]
    assert fitted.startswith("great") and fitted.rstrip().endswith("dull")
    pred = clf.predict([text])[0]
    assert pred.truncated


def test_generation_methods_report_invalid_answers(engine) -> None:
    preds = make_runner(engine, plan_method(MethodConfig(method="zero-shot", max_new_tokens=3))).predict(
        ["a great film", "dull"]
    )
    for p in preds:
        assert p.answer is not None
        assert p.label == (parse_label(p.answer) or "invalid")  # noqa: B023


def test_sampling_predictions_repeat_with_the_seed(engine) -> None:
    cfg = MethodConfig(method="sampling", samples=3, temperature=1.0, top_k=50, seed=3, max_new_tokens=3)
    texts = ["a great film", "dull", "fine"]
    first = [(p.label, p.answer) for p in make_runner(engine, plan_method(cfg)).predict(texts)]
    assert first == [(p.label, p.answer) for p in make_runner(engine, plan_method(cfg)).predict(texts)]
    assert all(len(a.split(" | ")) == 3 for _, a in first)


def test_kshot_scores_with_cached_demonstrations_equal_full_prompts(engine) -> None:
    from sentiq.text import LABELS

    cfg = MethodConfig(method="k-shot", k=2, scoring="loglik", seed=0)
    clf = make_runner(engine, plan_method(cfg, None, _pool()))
    texts = ["a great film", "dull boring mess"]
    preds = clf.predict(texts)
    for text, p in zip(texts, preds):
        (b,) = clf.bound
        ids = engine.encode(b.template.full(clean_text(text)))
        by_label = engine.score([], [ids], b.label_ids)[0]  # no prefix cache at all
        expected = np.exp(by_label) / np.exp(by_label).sum()
        assert p.p_positive == pytest.approx(expected[LABELS.index("positive")], abs=1e-4)


def test_tokenizer_that_merges_across_the_prefix_gets_whole_prompts(
    engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = engine.encode
    seam = build_template(engine.tokenizer, load_prompt("classifier")).prefix
    marker = real(" the")

    def merging(text: str) -> list[int]:  # tokens differ where prefix and body meet in one string
        if text.startswith(seam) and text != seam:
            return real(seam) + marker + real(text[len(seam) :])
        return real(text)

    monkeypatch.setattr(engine, "encode", merging)
    with caplog.at_level("WARNING", logger="sentiq"):
        clf = make_runner(engine, plan_method(MethodConfig(method="loglik")))
        make_runner(engine, plan_method(MethodConfig(method="zero-shot")))
    (b,) = clf.bound
    assert not b.cached and b.prefix == []
    assert sum("encoded whole" in r.getMessage() for r in caplog.records) == 1  # said once
    (pred,) = clf.predict(["a great film"])
    scores = engine.score([], [merging(b.template.full("a great film"))], b.label_ids)[0]
    assert pred.p_positive == pytest.approx(np.exp(scores[0]) / np.exp(scores).sum(), abs=1e-5)


def test_qwen_like_tokenizer_splits_exactly(engine) -> None:
    assert make_runner(engine, plan_method(MethodConfig(method="loglik"))).bound[0].cached


def test_an_exact_tie_of_label_scores_is_invalid_not_the_first_label(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiq.predictions import top_label

    assert top_label([0.5, 0.5], ["positive", "negative"]) == ("invalid", "tie: positive = negative")
    assert top_label([0.2, 0.4, 0.4], ["a", "b", "c"]) == ("invalid", "tie: b = c")
    assert top_label([0.3, 0.7], ["positive", "negative"]) == ("negative", None)
    clf = make_runner(engine, plan_method(MethodConfig(method="loglik")))
    monkeypatch.setattr(engine, "score_batches", lambda prefix, bodies, labels, firsts=(): _equal(bodies))
    (tie,) = clf.predict(["a great film"])
    assert (tie.label, tie.answer, tie.p_positive) == ("invalid", "tie: positive = negative", 0.5)


def _equal(bodies):
    from sentiq.core.batching import Done

    yield Done(list(range(len(bodies))), np.full((len(bodies), 2), -0.7), 0.0)


@pytest.mark.parametrize("method", ["loglik", "zero-shot"])
def test_the_stream_yields_every_text_once_and_the_prior_s_record_once(engine, method: str) -> None:
    engine.planner.max_tokens = 48  # several batches
    texts = ["a great film", "dull", "a slow start but a fine ending overall", "meh", "loved every minute of it"]
    runner = make_runner(engine, plan_method(MethodConfig(method=method, calibrate="contextual", max_new_tokens=2)))
    batches = list(runner.predict_batches(texts))
    assert len(batches) >= 2 and all(b.seconds > 0 for b in batches)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(texts)))
    assert [b.calibration is not None for b in batches] == [True] + [False] * (len(batches) - 1)
    assert batches[0].calibration.estimated_on == "content-free inputs"
    streamed = {i: p for b in batches for i, p in zip(b.indices, b.predictions)}
    again = runner.predict(texts)  # the prior is kept: no second estimate, no second record
    assert [(p.label, p.scores, p.answer) for p in again] == [
        (streamed[i].label, streamed[i].scores, streamed[i].answer) for i in range(len(texts))
    ]
    assert all(b.calibration is None for b in runner.predict_batches(texts))
