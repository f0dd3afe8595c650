"""Prompts as data (files, rules, records), calibration modes, ensembles and tune-prompt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.errors import OptionError
from sentiq.methods.calibration import domain_inputs, log_softmax, prior_from_record, softmax
from sentiq.methods.demonstrations import draw_demonstrations
from sentiq.methods.generation import vote
from sentiq.methods.plan import plan_method
from sentiq.methods.prompts import build_template, builtin_names, builtin_refs, load_prompt, load_prompts
from sentiq.methods.runner import make_runner
from sentiq.model_source import resolve_source
from sentiq.settings import MethodConfig

runner = CliRunner()
TICKETS = """
name = "tickets"
description = "Support tickets"
system = "Say whether the customer is {positive} or {negative}."
user = "Ticket: {text}"

[labels]
positive = "happy"
negative = "unhappy"

[variants.caps]
positive = "Happy"
negative = "Unhappy"
"""


def _file(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_builtin_prompt_loads_with_its_variants() -> None:
    refs = builtin_refs()
    assert refs[0] == "classifier"  # the default first: it wins ties in tune-prompt
    assert {"one-word", "one-word:capital", "reply", "any-text", "classifier:lower"} <= set(refs)
    for ref in refs:
        prompt = load_prompt(ref)
        assert prompt.ref == ref and "{text}" in prompt.user and prompt.description


def test_prompt_option_help_names_every_builtin_prompt() -> None:
    help_text = runner.invoke(app, ["classify", "--help"], env={"COLUMNS": "400"}).output
    assert all(name in help_text for name in builtin_names())


def test_prompt_file_fills_words_and_keeps_text_literal(tmp_path: Path) -> None:
    prompt = load_prompt(f"{_file(tmp_path, TICKETS)}:caps")
    assert prompt.name == "tickets" and prompt.words == ("Happy", "Unhappy")
    messages = prompt.messages("I typed {positive} and {text}")
    assert messages[0]["content"] == "Say whether the customer is Happy or Unhappy."
    assert messages[1]["content"] == "Ticket: I typed {positive} and {text}"  # a text is never a template
    assert prompt.parse("Unhappy.") == "negative" and prompt.parse("happy") == "positive"
    assert prompt.parse("happy or unhappy") is None and prompt.parse("unhappily") is None
    assert load_prompt(prompt.spec) == prompt  # the spec a run records loads the same prompt again


THREE = """
name = "tweets"
user = "Tweet: {text}\\nIs it {negative}, {neutral} or {positive}?"

[labels]
negative = "negative"
neutral = "neutral"
positive = "positive"

[variants.short]
negative = "neg"
neutral = "neu"
positive = "pos"
"""


def test_a_prompt_declares_any_label_set(tmp_path: Path) -> None:
    prompt = load_prompt(str(_file(tmp_path, THREE)))
    assert prompt.labels == ("negative", "neutral", "positive") and not prompt.ordered
    assert prompt.messages("so-so")[-1]["content"] == "Tweet: so-so\nIs it negative, neutral or positive?"
    assert prompt.parse("Neutral.") == "neutral" and prompt.parse("neutral or positive") is None
    short = load_prompt(f"{_file(tmp_path, THREE)}:short")
    assert short.words == ("neg", "neu", "pos") and short.labels == prompt.labels
    stars = load_prompt(
        str(
            _file(
                tmp_path,
                'user = "{text}"\nordered = true\n[labels]\n' + "".join(f's{i} = "{i}"\n' for i in range(1, 6)),
            )
        )
    )
    assert stars.ordered and stars.labels == ("s1", "s2", "s3", "s4", "s5") and stars.parse("4 stars") == "s4"
    assert stars.record()["ordered"] is True and "ordered" not in prompt.record()  # binary hashes unchanged


@pytest.mark.parametrize(
    "text,rule",
    [
        ('user = "no slot"\n[labels]\npositive = "a"\nnegative = "b"', "{text} exactly once"),
        ('user = "{review}"\n[labels]\npositive = "a"\nnegative = "b"', "unknown placeholder {review}"),
        ('user = "{text}"\nsystem = "{text}"\n[labels]\npositive = "a"\nnegative = "b"', "not in 'system'"),
        ('user = "{text}"\n[labels]\npositive = "Good"\nnegative = "good"', "cannot be told apart"),
        ('user = "{text}"\n[labels]\npositive = "good"\nnegative = "not good"', "cannot be told apart"),
        ('user = "{text}"\n[labels]\npositive = "yes"', "2 to 10 labels"),
        ('user = "{text}"\n[labels]\n' + "".join(f'l{i} = "w{i}"\n' for i in range(11)), "2 to 10 labels"),
        ('user = "{text}"\n[labels]\nvery-good = "a"\nbad = "b"', "label name 'very-good'"),
        ('user = "{text}"\nordered = "yes"\n[labels]\nlow = "a"\nhigh = "b"', "'ordered' must be true or false"),
        ('user = "{text} {neutral}"\n[labels]\npositive = "a"\nnegative = "b"', "unknown placeholder {neutral}"),
        ('user = "{text}"\n[labels]\npositive = " yes"\nnegative = "no"', "without outer spaces"),
        ('user = "{text}"\nlabel = 1\n[labels]\npositive = "yes"\nnegative = "no"', "unknown key 'label'"),
        ('user = "{text}"\n[labels]\npositive = "y"\nnegative = "n"\n[variants.v]\npositive = "x"', "same labels"),
        ('user = "{text}', "not valid TOML"),
        ('user = "{text}"\n[labels]\ninvalid = "bad"\ngood = "good"', "label name 'invalid' is reserved: sentiq "),
        ('user = "{text}"\n[labels]\nInvalid = "bad"\ngood = "good"', "'Invalid' is reserved"),
        (
            'user = "{text}"\n[labels]\nuncertain = "unsure"\ngood = "good"',
            "'uncertain' is reserved: sentiq writes 'uncertain' for a text it",
        ),
        ('user = "{text}"\n[labels]\nUNCERTAIN = "unsure"\ngood = "good"', "'UNCERTAIN' is reserved"),
        ('user = "{text}"\n[labels]\ntext = "bad"\ngood = "good"', "'text' is reserved: sentiq writes 'text' as"),
        ('user = "{text}"\n[labels]\nanswer = "bad"\ngood = "good"', "'answer' is reserved"),
        ('user = "{text}"\n[labels]\nGood = "fine"\ngood = "great"', "'good' and 'Good' differ only in case"),
    ],
)
def test_prompt_rules_refused_in_one_line(tmp_path: Path, text: str, rule: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(OptionError, match=rule) as err:
        load_prompt(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unknown_names_and_variants_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="Did you mean 'one-word'"):
        load_prompt("one-wrd")
    with pytest.raises(OptionError, match="no label-word variant 'shout'.*capital"):
        load_prompt("reply:shout")
    with pytest.raises(OptionError, match="does not exist"):
        load_prompt(str(tmp_path / "missing.toml"))


def test_generation_needs_label_words_that_differ_in_their_first_token(engine, tmp_path: Path) -> None:
    words = ("zzqa", "zzqb")
    assert engine.encode(words[0])[0] == engine.encode(words[1])[0]  # the tiny tokenizer never saw them
    path = _file(tmp_path, f'user = "{{text}}"\n[labels]\npositive = "{words[0]}"\nnegative = "{words[1]}"')
    make_runner(
        engine, plan_method(MethodConfig(method="loglik", prompt=str(path)))
    )  # scoring compares whole words: fine
    with pytest.raises(OptionError, match="start with the same token"):
        make_runner(engine, plan_method(MethodConfig(method="zero-shot", prompt=str(path))))


def test_scoring_ensemble_averages_label_logprobs(engine) -> None:
    texts = ["a great film", "dull boring mess", "fine"]
    singles = [
        make_runner(engine, plan_method(MethodConfig(prompt=r))).label_logprobs(texts) for r in ("classifier", "reply")
    ]
    preds = make_runner(engine, plan_method(MethodConfig(prompt="classifier,reply"))).predict(texts)
    expected = softmax(np.mean([log_softmax(s) for s in singles], axis=0))
    assert [p.p_positive for p in preds] == pytest.approx(list(expected[:, 0]))
    single_tokens = [p.tokens for p in make_runner(engine, plan_method(MethodConfig(prompt="reply"))).predict(texts)]
    assert all(p.tokens > t for p, t in zip(preds, single_tokens))  # every prompt's tokens counted


def test_generation_ensemble_votes_across_prompts(engine) -> None:
    cfg = MethodConfig(method="zero-shot", prompt="classifier,one-word,reply", max_new_tokens=2)
    for p in make_runner(engine, plan_method(cfg)).predict(["a great film", "dull"]):
        assert len(p.answer.split(" | ")) == 3


def test_batch_calibration_divides_out_the_texts_own_mean(engine) -> None:
    texts = ["a great film", "dull boring mess", "fine", "loved it"]
    raw = make_runner(engine, plan_method(MethodConfig())).label_logprobs(texts)
    seen: list[dict] = []
    clf = make_runner(engine, plan_method(MethodConfig(calibrate="batch")))
    preds = _predicted(clf, texts, seen)
    prior = softmax(raw).mean(axis=0)
    assert clf.prior == pytest.approx(prior)
    assert seen[0].mode == "batch" and seen[0].estimated_on == "the first 4 texts classified"
    calibrated = softmax(raw - np.log(prior))
    assert [p.p_positive for p in preds] == pytest.approx(list(calibrated[:, 0]))
    # the next chunk keeps the prior of the first
    _predicted(clf, ["a great film"], seen)
    assert clf.prior == pytest.approx(prior) and len(seen) == 1


def test_domain_inputs_are_seeded_in_domain_words() -> None:
    texts = ["a great film indeed", "dull boring mess"]
    a = domain_inputs(texts, seed=1)
    assert a == domain_inputs(texts, seed=1) and a != domain_inputs(texts, seed=2)
    assert len(a) == 20 and all(len(x.split()) == 4 for x in a)  # the texts' mean length (3.5, rounded)
    assert {w for x in a for w in x.split()} <= set(" ".join(texts).split())


def test_domain_calibration_records_its_prior(engine) -> None:
    seen: list[dict] = []
    _predicted(make_runner(engine, plan_method(MethodConfig(calibrate="domain"))), ["a great film", "dull"], seen)
    assert seen[0].estimated_on == "20 random in-domain word sequences"
    assert sum(seen[0].prior.values()) == pytest.approx(1.0)


def test_run_records_prompt_text_hash_and_calibration(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "p", 6, "--prompt", "one-word,reply:capital")
    result = runner.invoke(app, [*args, "--calibrate", "batch"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    refs = [p["ref"] for p in config["prompts"]]
    assert refs == ["one-word", "reply:capital"] and config["method_settings"]["prompt"] == "one-word,reply:capital"
    assert config["prompts"][1]["labels"] == {"positive": "Positive", "negative": "Negative"}
    assert config["prompts"][0]["hash"] == load_prompt("one-word").record()["hash"] != config["prompts"][1]["hash"]
    assert config["calibration"]["mode"] == "batch" and "the first 6 texts" in config["calibration"]["estimated_on"]
    compared = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"])
    assert json.loads(compared.stdout)["runs"][0]["prompt"] == "one-word,reply:capital"


def test_resumed_run_keeps_its_batch_prior(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "b", 8, "--calibrate", "batch")
    assert runner.invoke(app, args).exit_code == 0
    folder = tmp_path / "b"
    config = json.loads((folder / "config.json").read_text())
    whole = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
    # as if stopped after three texts: the rest would give another mean, the recorded prior is kept
    (folder / "predictions.partial.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in whole.head(3).astype(object).where(whole.head(3).notna(), None).to_dict("records")
        )
    )
    (folder / "config.json").write_text(json.dumps({**config, "status": "interrupted"}))
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    again = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
    assert list(again["p_positive"]) == pytest.approx(list(whole["p_positive"]), abs=1e-6)
    assert json.loads((folder / "config.json").read_text())["calibration"] == config["calibration"]


def test_classify_with_a_prompt_file_on_other_texts(tiny_model: Path, tmp_path: Path) -> None:
    path = _file(tmp_path, TICKETS, "tickets.toml")
    result = runner.invoke(
        app,
        ["classify", "The app crashes", "Thanks, works", "--model", str(tiny_model), "--method", "zero-shot"]
        + ["--prompt", str(path), "--max-new-tokens", "2", "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    prompt = load_prompt(str(path))
    assert [r["label"] for r in rows] == [prompt.parse(r["answer"]) or "invalid" for r in rows]


def test_classify_batch_prior_from_the_first_chunk_is_kept_on_resume(tiny_model: Path, tmp_path: Path) -> None:
    texts = tmp_path / "in.csv"
    pd.DataFrame({"id": range(6), "text": [f"review {i} was {'great' if i % 2 else 'dull'}" for i in range(6)]}).to_csv(
        texts, index=False
    )
    out = tmp_path / "out.csv"
    base = ["classify", "--input", str(texts), "--output", str(out), "--model", str(tiny_model), "--chunk-size", "4"]
    result = runner.invoke(app, [*base, "--calibrate", "batch"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out.csv.calibration.json").read_text())
    assert record["estimated_on"] == "the first 4 texts classified" and "batch calibration" in result.output
    out.unlink()  # resume with nothing written: the recorded prior, not a new one, must be used
    (tmp_path / "out.csv.calibration.json").write_text(
        json.dumps({**record, "prior": {"positive": 0.9, "negative": 0.1}})
    )
    again = runner.invoke(app, [*base, "--calibrate", "batch", "--resume"])
    assert again.exit_code == 0, again.output
    raw = runner.invoke(app, ["classify", "--input", str(texts), "--model", str(tiny_model), "--json"])
    p_raw = np.array([json.loads(line)["p_positive"] for line in raw.stdout.splitlines()])
    odds = p_raw / (1 - p_raw) / 9  # the recorded prior's odds divided out
    assert pd.read_csv(out)["p_positive"].to_numpy() == pytest.approx(
        odds / (1 + odds), abs=1e-5
    )  # both written to 6 digits


def test_tune_prompt_grid_choice_and_tuned_runs(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["tune-prompt", "--model", str(tiny_model), "--n", "6", "--output-dir", str(tmp_path)]
        + ["--prompts", "classifier,reply,one-word:capital", "--ensemble", "2"],
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "tuning" / tiny_model.name / "prompt"
    grid = pd.read_csv(folder / "grid.csv")
    assert len(grid) == (3 + 1) * 4 * 2  # three prompts and one ensemble, four calibrations, with and without ending
    assert set(grid["calibrate"]) == {"none", "contextual", "domain", "batch"} and set(grid["tail"]) == {0, 80}
    best = json.loads((folder / "best.json").read_text())
    assert best["top_accuracy"] == grid["accuracy"].max() and best["n"] == 6
    se = (best["top_accuracy"] * (1 - best["top_accuracy"]) / 6) ** 0.5
    assert best["accuracy"] >= best["top_accuracy"] - se - 1e-9
    assert best["baseline"]["prompt"] == "classifier" and set(best["prompts"]) >= set(best["prompt_names"].split(","))
    assert (folder / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "chosen: prompt" in result.output
    answered = pd.read_csv(folder / "generation.csv")  # single prompts only: generation votes, it does not average
    assert len(answered) == 3 * 4 * 2 and set(answered["prompt"]) == {"classifier", "reply", "one-word:capital"}
    assert best["generation"]["top_accuracy"] == answered["accuracy"].max()
    assert "for methods that generate" in result.output
    tuned = evaluate_args(tiny_model, labelled_csv, tmp_path, "t", 4, "--method", "loglik", "--tuned")
    assert runner.invoke(app, tuned).exit_code == 0
    settings = json.loads((tmp_path / "t" / "config.json").read_text())["method_settings"]
    assert (settings["prompt"], settings["calibrate"]) == (best["prompt"], best["calibrate"])
    assert settings.get("tail", 0) == best["tail"]
    without = ["--prompts", "classifier", "--ensemble", "0", "--tail", "0", "--output-dir", str(tmp_path / "no")]
    result = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), "--n", "4", *without])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "no" / "tuning" / tiny_model.name / "prompt" / "grid.csv")["tail"]) == {0}


def test_tune_prompt_with_demonstrations_is_the_k_shot_choice(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sentiq.methods.plan
    from sentiq.io.datasets import load_pool, load_tuning
    from sentiq.io.samples import balanced_sample

    drawn: list[list[tuple[str, str]]] = []
    draw = sentiq.methods.plan.draw_demonstrations
    monkeypatch.setattr(
        sentiq.methods.plan,
        "draw_demonstrations",
        lambda pool, k, seed, labels: drawn.append(draw(pool, k, seed, labels)) or drawn[-1],
    )
    args = ["--prompts", "classifier,reply", "--ensemble", "0", "--tail", "0", "--k", "1"]
    result = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), "--n", "4", "-o", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert "k-shot k=1 loglik accuracy" in result.output
    folder = tmp_path / "tuning" / tiny_model.name
    assert json.loads((folder / "k-shot-prompt" / "best.json").read_text())["k"] == 1
    assert not (folder / "prompt").exists()  # the choice without demonstrations is another search's
    evaluated = draw(load_pool(), 1, 0)  # what evaluate's k-shot --k 1 --seed 0 shows
    assert drawn and all(demos == evaluated for demos in drawn)
    split = set(balanced_sample(load_tuning(), 4, 0)["text"])
    assert split.isdisjoint(text for text, _ in evaluated)  # no tuning text shows the task


def test_tune_prompt_chooses_among_demonstration_draws_and_tuned_k_shot_shows_them(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sentiq.methods.plan
    from sentiq.io.datasets import load_pool

    drawn: set[int] = set()
    draw = sentiq.methods.plan.draw_demonstrations
    monkeypatch.setattr(
        sentiq.methods.plan,
        "draw_demonstrations",
        lambda pool, k, seed, labels: drawn.add(seed) or draw(pool, k, seed, labels),
    )
    args = ["--model", str(tiny_model), "--n", "6", "--seed", "3", "--prompts", "classifier,reply", "--k", "1"]
    args += ["--ensemble", "2", "--tail", "0"]
    assert runner.invoke(app, ["tune-prompt", *args, "-o", str(tmp_path / "one")]).exit_code == 0
    result = runner.invoke(app, ["tune-prompt", *args, "--draws", "3", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert drawn == {3, 4, 5}
    folder = tmp_path / "tuning" / tiny_model.name / "k-shot-prompt"
    grid, best = pd.read_csv(folder / "grid.csv"), json.loads((folder / "best.json").read_text())
    one = pd.read_csv(tmp_path / "one" / "tuning" / tiny_model.name / "k-shot-prompt" / "grid.csv")
    assert grid["demo_seed"].value_counts().to_dict() == {3: len(one), 4: len(one), 5: len(one)}
    pd.testing.assert_frame_equal(grid[grid["demo_seed"] == 3].reset_index(drop=True), one)  # draws don't mix
    chosen = grid[(grid["prompt"] == best["prompt_names"]) & (grid["calibrate"] == best["calibrate"])]
    assert best["accuracy"] in set(chosen[chosen["demo_seed"] == best["demo_seed"]]["accuracy"])
    shown = [{"label": lab, "text": t} for t, lab in draw(load_pool(), 1, best["demo_seed"])]
    assert best["demonstrations"] == shown
    said = " ".join(result.output.split())
    assert f"chosen: prompt {best['prompt_names']} · demos {best['demo_seed']}, calibration {best['calibrate']}" in said
    assert best["generation"]["demo_seed"] in (3, 4, 5)
    tuned = evaluate_args(tiny_model, labelled_csv, tmp_path, "t", 4, "--method", "k-shot", "--k", "1", "--tuned")
    assert runner.invoke(app, [*tuned, "--scoring", "loglik"]).exit_code == 0
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["method_settings"]["demo_seed"] == best["demo_seed"] and config["demonstrations"] == shown
    refused = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), "--draws", "2"])
    assert refused.exit_code != 0 and "--draws needs --k" in refused.output


def test_demo_seed_draws_the_demonstrations_and_the_run_records_them(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    from sentiq.io.datasets import load_pool

    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "d", 4, "--method", "k-shot", "--k", "1")
    assert runner.invoke(app, [*args, "--seed", "0", "--demo-seed", "7"]).exit_code == 0
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    drawn = draw_demonstrations(load_pool(), 1, 7)
    assert drawn != draw_demonstrations(load_pool(), 1, 0)
    assert config["demonstrations"] == [{"label": lab, "text": t} for t, lab in drawn]
    assert config["method_settings"]["demo_seed"] == 7
    loglik = evaluate_args(tiny_model, labelled_csv, tmp_path, "l", 4, "--method", "loglik", "--demo-seed", "7")
    assert runner.invoke(app, loglik).exit_code == 0
    config = json.loads((tmp_path / "l" / "config.json").read_text())
    assert "demonstrations" not in config and "demo_seed" not in config["method_settings"]


def test_tuned_k_shot_takes_the_choice_made_with_demonstrations(tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.workflows.tuning.choices import apply_tuned

    folder = tmp_path / "tuning" / tiny_model.name
    (folder / "k-shot-prompt").mkdir(parents=True)
    (folder / "k-shot-prompt" / "best.json").write_text(
        json.dumps({"prompt": "question-last", "calibrate": "none", "tail": 80, "k": 2})
    )
    kshot = MethodConfig(method="k-shot", scoring="loglik")
    (alone,) = apply_tuned(
        [kshot], resolve_source(str(tiny_model)), tmp_path
    )  # no choice without demonstrations needed
    assert (alone.prompt, alone.tail) == ("question-last", 80)
    with pytest.raises(OptionError, match="run 'sentiq tune-prompt'"):
        apply_tuned([kshot, MethodConfig(method="loglik")], resolve_source(str(tiny_model)), tmp_path)
    (folder / "prompt").mkdir()
    (folder / "prompt" / "best.json").write_text(json.dumps({"prompt": "reply:capital", "calibrate": "batch"}))
    k, plain = apply_tuned([kshot, MethodConfig(method="loglik")], resolve_source(str(tiny_model)), tmp_path)
    assert (k.prompt, k.calibrate, k.tail) == ("question-last", "none", 80)
    assert (plain.prompt, plain.calibrate, plain.tail) == ("reply:capital", "batch", 0)


def test_cached_prefix_equals_whole_prompt_for_every_builtin(engine) -> None:
    for ref in builtin_refs():
        (b,) = make_runner(engine, plan_method(MethodConfig(prompt=ref))).bound
        text = "a great film"
        whole = engine.encode(build_template(engine.tokenizer, load_prompts(ref)[0]).full(text))
        if b.cached:
            assert b.prefix + list(b.body(engine, text)) == whole


def test_first_step_prior_divided_out_among_label_tokens_only() -> None:
    import torch

    from sentiq.core.decoding import divide_prior

    logp = torch.log_softmax(torch.tensor([[2.0, 1.9, 0.5, 0.1]]), dim=-1)
    moved = divide_prior(logp, ((0, float(np.log(0.8))), (1, float(np.log(0.2)))))
    assert int(moved.argmax()) == 1  # the label the model leans to loses its lead
    labels = lambda t: torch.logsumexp(t[0, :2], dim=0)  # noqa: E731
    assert float(labels(moved)) == pytest.approx(float(labels(logp)))  # the labels' share is kept
    assert torch.equal(moved[0, 2:], logp[0, 2:])  # other tokens untouched
    odds = float((moved[0, 0] - moved[0, 1]) - (logp[0, 0] - logp[0, 1]))
    assert odds == pytest.approx(float(np.log(0.2 / 0.8)))


def test_ending_mixed_into_the_first_step_among_label_tokens_only() -> None:
    import torch

    from sentiq.core.decoding import mix_first

    logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.5, 0.1], [2.0, 1.0, 0.5, 0.1]]), dim=-1)
    ending = torch.log(torch.tensor([[0.1, 0.9], [float("nan"), float("nan")]]))
    mixed = mix_first(logp, [0, 1], ending)
    odds = float(mixed[0, 0] - mixed[0, 1])
    assert odds == pytest.approx((1.0 + float(np.log(0.1 / 0.9))) / 2)  # the mean of the two views' log-odds
    labels = lambda t: torch.logsumexp(t[0, :2], dim=0)  # noqa: E731
    assert float(labels(mixed)) == pytest.approx(float(labels(logp)))  # the labels' share is kept
    assert torch.equal(mixed[0, 2:], logp[0, 2:]) and torch.equal(mixed[1], logp[1])  # others, and NaN rows, kept


@pytest.mark.parametrize("mode", ["contextual", "batch"])
def test_generation_calibrates_each_prompts_first_answer_token(engine, mode: str) -> None:
    seen: list[dict] = []
    cfg = MethodConfig(method="zero-shot", prompt="classifier,reply", calibrate=mode, max_new_tokens=2)
    clf = make_runner(engine, plan_method(cfg))
    preds = _predicted(clf, ["a great film", "dull boring mess"], seen)
    assert len(seen) == 1 and len(seen[0].prior) == 2  # one prior per prompt
    assert all(sum(p.values()) == pytest.approx(1.0) for p in seen[0].prior)
    for p in preds:
        votes = [(a, clf.bound[i].prompt.parse(a), None) for i, a in enumerate(p.answer.split(" | "))]
        assert p.label == vote(votes).label  # labels still come from the answers actually generated
    # a prior taken from a record (a resumed run's) gives the same answers
    again = make_runner(engine, plan_method(cfg), prior_from_record(seen[0])).predict(
        ["a great film", "dull boring mess"]
    )
    assert [p.answer for p in again] == [p.answer for p in preds]


def test_prompt_choice_prefers_the_simplest_cell_within_one_standard_error() -> None:
    from sentiq.workflows.tuning.prompts import _simplest_within_error

    def grid(*rows: tuple) -> pd.DataFrame:
        return pd.DataFrame([dict(prompt=p, calibrate=c, accuracy=a, macro_f1=a, tail=t) for p, c, a, t in rows])

    # n=100 at 0.90: one standard error is 0.03
    cells = grid(("a", "contextual", 0.90, 0), ("b", "none", 0.88, 0), ("a", "none", 0.86, 0), ("a,b", "none", 0.90, 0))
    assert _simplest_within_error(cells, 100) == 1  # 0.88 uncalibrated, single, within 0.03
    assert _simplest_within_error(cells, 10_000) == 0  # a large split tells 0.90 from 0.88
    ties = grid(("a", "none", 0.86, 0), ("b", "none", 0.88, 0), ("c", "batch", 0.88, 0))
    assert _simplest_within_error(ties, 100) == 1  # among the simplest, the more accurate
    ends = grid(("a", "none", 0.86, 0), ("a", "none", 0.87, 80), ("b", "none", 0.87, 0), ("a", "contextual", 0.9, 80))
    assert _simplest_within_error(ends, 100) == 2  # the ending fits nothing: more accurate, or not chosen


@pytest.mark.parametrize("calibrate,tail", [("none", 0), ("none", 3), ("contextual", 0), ("contextual", 3)])
def test_tune_prompt_reads_generation_as_generation_decides(
    engine, monkeypatch: pytest.MonkeyPatch, calibrate: str, tail: int
) -> None:
    """The search's generation cells, read off its scoring pass, pick the first answer token that
    zero-shot's own first decoding step (ending mixed in, prior divided out) ranks highest among the
    label words' casings."""
    import sentiq.core.engine
    from sentiq.core.decoding import decode, divide_prior
    from sentiq.methods.binding import answer_firsts
    from sentiq.methods.prompts import CONTENT_FREE
    from sentiq.methods.texts import endings
    from sentiq.workflows.tuning.cells import answered_labels, first_answer_step
    from sentiq.workflows.tuning.prompts import read_views

    texts = ["a fine film", "dull and long and slow", "I loved it, truly a delight to watch", "bad", "so-so really"]
    steps: list[np.ndarray] = []

    def spy(first, step, sampling, *rest):
        steps.append(divide_prior(first, sampling.first_prior).numpy())
        return decode(first, step, sampling, *rest)

    monkeypatch.setattr(sentiq.core.answering, "decode", spy)
    gen = make_runner(
        engine, plan_method(MethodConfig(method="zero-shot", prompt="classifier", calibrate=calibrate, tail=tail))
    )
    for text in texts:  # one at a time: each first step is that text's
        gen.predict([text])
    ids, names = answer_firsts(gen.bound[0], engine)
    assert len(ids) > 2 and set(names) == {0, 1}  # other casings than the label words' own
    expected = [names[int(np.argmax(step[0, ids]))] == 0 for step in steps]

    inputs = {"texts": texts, "contextual": list(CONTENT_FREE)}
    ends = {kind: endings(xs, tail) for kind, xs in inputs.items()} if tail else {}
    _, answers = read_views(make_runner(engine, plan_method(MethodConfig(prompt="classifier"))), inputs, ends)
    assert (answered_labels(calibrate, tail, answers) == 0).tolist() == expected  # 0: positive
    read = first_answer_step(calibrate, tail, answers).numpy()
    np.testing.assert_allclose(read, np.concatenate([step[:, ids] for step in steps]), atol=1e-4)


def test_tuned_generation_methods_take_the_choice_made_by_answers(tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.workflows.tuning.choices import apply_tuned

    folder = tmp_path / "tuning" / tiny_model.name / "prompt"
    folder.mkdir(parents=True)
    answers = {"prompt": "classifier", "prompt_names": "classifier", "calibrate": "batch", "tail": 0}
    best = {"prompt": "question-last", "calibrate": "none", "tail": 80, "generation": answers}
    (folder / "best.json").write_text(json.dumps(best))
    methods = [MethodConfig(method=m) for m in ("loglik", "zero-shot", "k-shot")]
    loglik, zero, kshot = apply_tuned(methods, resolve_source(str(tiny_model)), tmp_path)
    assert (loglik.prompt, loglik.calibrate, loglik.tail) == ("question-last", "none", 80)
    assert (zero.prompt, zero.calibrate, zero.tail) == (kshot.prompt, kshot.calibrate, kshot.tail)
    assert (zero.prompt, zero.calibrate, zero.tail) == ("classifier", "batch", 0)


def test_tune_prompt_leaves_prompts_generation_refuses_out_of_its_generation_choice(
    tiny_model: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "very.toml"
    shared.write_text('user = "{text} Verdict?"\n[labels]\npositive = "very good"\nnegative = "very bad"\n')
    args = ["--prompts", f"{shared},classifier", "--ensemble", "0", "--tail", "0", "--n", "4", "-o", str(tmp_path)]
    result = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), *args])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "tuning" / tiny_model.name / "prompt"
    assert set(pd.read_csv(folder / "grid.csv")["prompt"]) == {"very", "classifier"}
    assert set(pd.read_csv(folder / "generation.csv")["prompt"]) == {"classifier"}
    assert json.loads((folder / "best.json").read_text())["generation"]["prompt_names"] == "classifier"
    alone = ["--prompts", str(shared), "--ensemble", "0", "--tail", "0", "--n", "4", "-o", str(tmp_path / "alone")]
    result = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), *alone])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "alone" / "tuning" / tiny_model.name / "prompt"
    assert "generation" not in json.loads((folder / "best.json").read_text())
    assert not (folder / "generation.csv").exists() and "for methods that generate" not in result.output


def _predicted(runner, texts: list[str], seen: list[dict]) -> list:
    """The runner's predictions in the texts' order; each calibration record its batches carry in `seen`."""
    out: list = [None] * len(texts)
    for batch in runner.predict_batches(texts):
        if batch.calibration is not None:
            seen.append(batch.calibration)
        for i, p in zip(batch.indices, batch.predictions):
            out[i] = p
    return out
