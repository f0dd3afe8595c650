"""The engine against direct full-sequence computations on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import plan_shape

from sentiq.core.batching import plan_batches
from sentiq.core.decoding import Sampling
from sentiq.core.engine import Engine

TEXTS = [
    " a great film",
    " dull",
    " an absolute delight from start to finish, I loved every minute of it",
    " boring mess",
    " the plot was dull and the dialogue lifeless",
]


def _bodies(engine: Engine) -> tuple[list[int], list[list[int]]]:
    prefix = engine.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nReview:")
    bodies = [engine.encode(t + "<|im_end|>\n<|im_start|>assistant\n") for t in TEXTS]
    return prefix, bodies


def _direct(model, ids: list[int], continuation: list[int]) -> float:
    """log P(continuation | ids) from one unbatched full forward pass, no cache."""
    with torch.inference_mode():
        logits = model(torch.tensor([ids + continuation])).logits[0].float().log_softmax(-1)
    return sum(logits[len(ids) - 1 + t, tok].item() for t, tok in enumerate(continuation))


def test_plan_batches_sorts_longest_first_and_respects_budget() -> None:
    lengths = [5, 40, 12, 39, 7, 38]
    plan = plan_batches(lengths, max_tokens=80, max_rows=None)
    assert sorted(i for b in plan for i in b) == list(range(6))
    assert plan[0][0] == 1  # the longest first: memory errors surface at once
    for batch in plan:
        assert len(batch) * max(lengths[i] for i in batch) <= 80 or len(batch) == 1


def test_plan_batches_counts_the_shared_prefix_per_row() -> None:
    assert len(plan_batches([10] * 8, max_tokens=80, max_rows=None)) == 1
    assert [len(b) for b in plan_batches([10] * 8, max_tokens=80, max_rows=None, shared=30)] == [2, 2, 2, 2]


def test_plan_batches_keeps_lengths_close() -> None:
    plan = plan_batches([100, 98, 10, 9], max_tokens=10_000, max_rows=None)
    assert [sorted(b) for b in plan] == [[0, 1], [2, 3]]  # short texts are not padded to 100


def test_single_token_scores_equal_full_recompute(engine: Engine) -> None:
    prefix, bodies = _bodies(engine)
    labels = [[engine.encode("Positive")[0]], [engine.encode("Negative")[0]]]
    scores = engine.score(prefix, bodies, labels)
    for i, body in enumerate(bodies):
        for j, lab in enumerate(labels):
            assert scores[i, j] == pytest.approx(_direct(engine.model, prefix + body, lab), abs=1e-4)


def test_multi_token_scores_equal_full_recompute(engine: Engine) -> None:
    prefix, bodies = _bodies(engine)
    labels = [engine.encode("very positive"), engine.encode("negative indeed"), engine.encode("N")]
    assert max(len(lab) for lab in labels) > 1
    scores = engine.score(prefix, bodies, labels)
    for i, body in enumerate(bodies):
        for j, lab in enumerate(labels):
            assert scores[i, j] == pytest.approx(_direct(engine.model, prefix + body, lab), abs=1e-4)


@pytest.mark.parametrize("words", [["Positive", "Negative"], ["very positive", "negative indeed"]])
def test_first_token_columns_equal_full_recompute(engine: Engine, words: list[str]) -> None:
    prefix, bodies = _bodies(engine)
    labels = [engine.encode(w) for w in words]
    firsts = [engine.encode(w)[0] for w in ("positive", "POS", "negative", "The")]
    scores = engine.score(prefix, bodies, labels, firsts=firsts)
    assert scores.shape == (len(bodies), len(labels) + len(firsts))
    np.testing.assert_allclose(scores[:, : len(labels)], engine.score(prefix, bodies, labels), atol=1e-5)
    for i, body in enumerate(bodies):
        for j, tok in enumerate(firsts):
            assert scores[i, len(labels) + j] == pytest.approx(_direct(engine.model, prefix + body, [tok]), abs=1e-4)


@pytest.mark.parametrize("budget,rows", [(1, None), (64, 2), (100_000, None)])
def test_batched_equals_unbatched(tiny_lm, budget: int, rows: int | None) -> None:
    reference = Engine(tiny_lm, max_batch_tokens=1)
    batched = Engine(tiny_lm, max_batch_tokens=budget, max_batch_rows=rows)
    prefix, bodies = _bodies(reference)
    labels = [[reference.encode("Positive")[0]], [reference.encode("Negative")[0]]]
    np.testing.assert_allclose(
        batched.score(prefix, bodies, labels), reference.score(prefix, bodies, labels), atol=1e-4
    )


def test_results_come_back_in_input_order(engine: Engine) -> None:
    prefix, bodies = _bodies(engine)
    labels = [[engine.encode("Positive")[0]], [engine.encode("Negative")[0]]]
    forward = engine.score(prefix, bodies, labels)
    backward = engine.score(prefix, bodies[::-1], labels)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)


def test_empty_prefix_works(engine: Engine) -> None:
    _, bodies = _bodies(engine)
    labels = [[engine.encode("Positive")[0]]]
    scores = engine.score([], bodies, labels)
    assert scores[0, 0] == pytest.approx(_direct(engine.model, bodies[0], labels[0]), abs=1e-4)


def test_greedy_matches_transformers_generate(engine: Engine) -> None:
    """Our cached, right-padded decoding equals HF generate with do_sample=False passed explicitly,
    even though the model's own generation_config says do_sample=True."""
    assert engine.model.generation_config.do_sample is True
    prefix, bodies = _bodies(engine)
    got = _generate(engine, prefix, bodies, [Sampling(do_sample=False, max_new_tokens=6)])[0]
    for body, answers in zip(bodies, got):
        new, _ = _hf_greedy(engine, prefix + body, 6)
        cut = next((i for i, t in enumerate(new) if t in engine.eos_ids), len(new))
        assert [a.text for a in answers] == [engine.decode(new[:cut])]


def test_answers_keep_the_watched_tokens_where_they_first_chose_one(engine: Engine) -> None:
    """An answer's `decided` holds the watched tokens' log-probabilities at the first step that chose one
    of them (not necessarily the first step), as transformers' own greedy scores give them."""
    prefix, bodies = _bodies(engine)
    runs = [_hf_greedy(engine, prefix + body, 5) for body in bodies]
    watch = sorted({new[min(1, len(new) - 1)] for new, _ in runs} - {new[0] for new, _ in runs[:1]})
    got = _generate(engine, prefix, bodies, [Sampling(do_sample=False, max_new_tokens=5)], watch=watch)[0]
    later = 0
    for (new, scores), (answer,) in zip(runs, got):
        step = next((j for j, t in enumerate(new) if t in watch), None)
        if step is None:
            assert answer.decided is None
            continue
        later += step > 0
        np.testing.assert_allclose(answer.decided, scores[step][watch].numpy(), atol=1e-4)
    assert later  # some answer committed after its first token


def test_sampling_repeats_and_ignores_batching(tiny_lm) -> None:
    one = Engine(tiny_lm, max_batch_tokens=1)
    many = Engine(tiny_lm, max_batch_tokens=100_000)
    prefix, bodies = _bodies(one)
    s = Sampling(do_sample=True, temperature=1.5, top_k=50, max_new_tokens=4, num_samples=3)
    seeds = [11, 22, 33, 44, 55]
    first = _generate(one, prefix, bodies, [s], seeds=seeds)[0]
    assert first == _generate(one, prefix, bodies, [s], seeds=seeds)[0]
    assert first == _generate(many, prefix, bodies, [s], seeds=seeds)[0]
    assert all(len(a) == 3 for a in first)
    other = _generate(one, prefix, bodies, [s], seeds=[1, 2, 3, 4, 5])[0]
    assert other != first  # seeds matter


def test_a_grid_of_settings_equals_each_setting_alone(engine: Engine) -> None:
    prefix, bodies = _bodies(engine)
    grid = [
        Sampling(do_sample=True, temperature=t, top_k=k, max_new_tokens=3, num_samples=n)
        for t, k, n in [(0.5, 5, 1), (1.5, 100, 3), (1.0, 2, 2)]
    ]
    together = _generate(engine, prefix, bodies, grid, seeds=[5, 6, 7, 8, 9])
    for setting, answers in zip(grid, together):
        assert answers == _generate(engine, prefix, bodies, [setting], seeds=[5, 6, 7, 8, 9])[0]


def test_score_batches_yields_every_text_once_with_its_rows(engine: Engine) -> None:
    prefix, bodies = _bodies(engine)
    engine.planner.max_tokens = 40
    done = list(engine.score_batches(prefix, bodies, [[3]]))
    assert len(done) >= 2 and len(engine.planner.stats) >= 2
    assert sorted(i for d in done for i in d.indices) == list(range(len(bodies)))
    whole = engine.score(prefix, bodies, [[3]])
    for d in done:
        assert np.array_equal(d.result, whole[d.indices])


def test_out_of_memory_halves_the_budget_for_that_call_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prefix, bodies = _bodies(engine)
    bodies = [bodies[2], *bodies[2:3] * 4, bodies[1]]  # equal lengths: one batch until memory runs out
    engine.planner.max_tokens = 100_000
    real = engine._score_batch
    sizes: list[int] = []
    freed = {"n": 0}

    def flaky(prefix, rows, labels, single, firsts=()):
        sizes.append(len(rows))
        if len(rows) > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(prefix, rows, labels, single)

    monkeypatch.setattr(engine, "_score_batch", flaky)
    monkeypatch.setattr(engine.planner, "free_memory", lambda: freed.__setitem__("n", freed["n"] + 1))
    labels = [[engine.encode("Positive")[0]]]
    with caplog.at_level("WARNING", logger="sentiq"):
        scores = engine.score(prefix, bodies, labels)
    for i in (0, 5):
        assert scores[i, 0] == pytest.approx(_direct(engine.model, prefix + bodies[i], labels[0]), abs=1e-4)
    halvings = [r for r in caplog.records if "token budget halved" in r.getMessage()]
    assert halvings and freed["n"] == len(halvings)  # every halving is logged and frees memory
    assert engine.planner.max_tokens == 100_000  # the engine's budget is untouched
    sizes.clear()
    engine.score(prefix, bodies, labels)
    assert sizes[0] == 5  # the next call tries the full budget again


def test_forward_passes_need_no_autograd(engine: Engine) -> None:
    assert not any(p.requires_grad for p in engine.model.parameters())
    prefix, bodies = _bodies(engine)
    engine.warm_up(prefix)
    kv = engine.prefixes.kv(prefix)
    assert kv and all(k.is_inference() and not k.requires_grad for k, _ in kv)
    out = engine._score_batch(prefix, bodies[:2], [[3]], True)
    assert out.is_inference() and not out.requires_grad


def test_plan_shapes_cpu_buckets_against_accelerator_fill() -> None:
    """200 reviews of IMDB-like lengths at the CUDA budget: tight buckets (CPU) make many small
    passes; filling a quarter of the budget with length-sorted neighbours (accelerators) makes a few
    large ones at modest padding; filling all of it pads short texts to the longest."""
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in np.clip(rng.lognormal(5.4, 0.6, 200), 20, 1500)]
    tight = plan_batches(lengths, 65536, shared=40)
    filled = plan_batches(lengths, 65536, shared=40, fill=65536 // 4)
    whole = plan_batches(lengths, 65536, shared=40, fill=65536)
    a, b, c = (plan_shape(p, lengths, 40) for p in (tight, filled, whole))
    print(f"\ntight:   {a}\nquarter: {b}\nwhole:   {c}")
    for plan in (tight, filled, whole):
        assert sorted(i for batch in plan for i in batch) == list(range(200))
        assert all(len(batch) * (max(lengths[i] for i in batch) + 40) <= 65536 for batch in plan)
    assert a.batches >= 15 and a.rows_per_batch <= 15 and a.padding < 0.1
    assert b.batches <= a.batches / 3 and b.tokens_per_batch >= 4 * a.tokens_per_batch and b.padding < 0.25
    assert c.batches < b.batches and c.padding > b.padding


def test_engine_plans_by_device(tiny_lm) -> None:
    assert Engine(tiny_lm).planner.fill == 0  # tiny_lm runs on the CPU: tight buckets only


def test_head_computes_label_scores_in_float32_from_half_precision_weights(tiny_lm) -> None:
    """A bfloat16 product keeps ~3 significant digits of each logit, so close labels would tie."""
    import copy

    from sentiq.core import heads

    lm = copy.copy(tiny_lm)
    lm.model = copy.deepcopy(tiny_lm.model).to(torch.bfloat16)
    eng = Engine(lm)
    torch.manual_seed(3)
    hidden = (torch.randn(4, lm.model.config.hidden_size) * 40).to(torch.bfloat16)
    weight = lm.model.lm_head.weight
    exact = torch.nn.functional.linear(hidden.float(), weight.float()).log_softmax(-1)
    old = heads.HEAD_BLOCK_ROWS
    try:
        heads.HEAD_BLOCK_ROWS = 7  # several blocks, the last one short
        got = eng._head(hidden)
    finally:
        heads.HEAD_BLOCK_ROWS = old
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, exact, rtol=0, atol=1e-5)
    rounded = lm.model.lm_head(hidden).float().log_softmax(-1)  # what a bfloat16 head gives
    assert (rounded - exact).abs().max() > 1e-3


def test_prefix_cache_keeps_the_latest_prefixes_only(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiq.core import prefixes as prefixes_module

    monkeypatch.setattr(prefixes_module, "PREFIXES_KEPT", 2)
    prefixes = [engine.encode(f"Review number {i}:") for i in range(4)]
    for p in prefixes:
        engine.prefixes.kv(p)
    engine.prefixes.kv(prefixes[2])  # used again: kept over the older ones
    engine.prefixes.kv(engine.encode("Review number 9:"))
    assert list(engine.prefixes.kept) == [tuple(prefixes[2]), tuple(engine.encode("Review number 9:"))]


def test_batch_stats_are_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import deque

    prefix, bodies = _bodies(engine)
    engine.planner.stats = deque(maxlen=3)
    engine.planner.max_tokens = 20
    engine.score(prefix, bodies * 2, [[3]])
    assert len(engine.planner.stats) == 3


def _hf_greedy(engine: Engine, ids: list[int], max_new_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
    """transformers' own greedy answer to one prompt (do_sample=False passed explicitly): its new tokens
    and the log-probabilities of each step."""
    prompt = torch.tensor([ids])
    with torch.inference_mode():
        out = engine.model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=engine.eos_ids,
            pad_token_id=engine.pad_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    return out.sequences[0, prompt.shape[1] :].tolist(), [torch.log_softmax(x[0], -1) for x in out.scores]


def _generate(engine: Engine, prefix, bodies, samplings, seeds=None, watch=()) -> list:
    """generate_batches gathered in input order: result[setting][text][sample]."""
    answers: list = [[None] * len(bodies) for _ in samplings]
    for done in engine.generate_batches(prefix, bodies, samplings, seeds, None, watch):
        for per_setting, got in zip(answers, done.result):
            for i, texts in zip(done.indices, got):
                per_setting[i] = texts
    return answers


def _whole_state(model, ids: list[int], layers: int | None = None) -> torch.Tensor:
    """The last position's hidden state of one unbatched pass with no cache, through the first `layers`
    decoder layers of a copy of the model (and its final norm)."""
    import copy

    cut = copy.deepcopy(model)
    if layers is not None:
        cut.model.layers = cut.model.layers[:layers]
    with torch.inference_mode():
        return cut.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float()


@pytest.mark.parametrize("layers", [None, 1])
def test_answer_states_equal_a_whole_pass_through_as_many_layers(engine: Engine, layers: int | None) -> None:
    prefix, bodies = _bodies(engine)
    engine.planner.max_tokens = 40  # several batches
    done = list(engine.state_batches(prefix, bodies, layers))
    assert len(done) >= 2 and sorted(i for d in done for i in d.indices) == list(range(len(bodies)))
    states = {i: row for d in done for i, row in zip(d.indices, d.result)}
    for i, body in enumerate(bodies):
        expected = _whole_state(engine.model, prefix + body, layers).numpy()
        np.testing.assert_allclose(states[i], expected, rtol=0, atol=1e-4)
    assert engine.depth == 2 and len(engine.model.model.layers) == 2  # the model is whole again


@pytest.mark.parametrize("labels", [[[5], [9]], [[5, 6], [9]]])  # one token each, or one of two tokens
@pytest.mark.parametrize("layers", [[1], [2], [1, 2]])
def test_a_scoring_pass_reads_the_answer_states_beside_the_label_scores(
    engine: Engine, labels: list[list[int]], layers: list[int]
) -> None:
    """What a fit learns from comes off one pass: its label scores are the scoring pass's, each layer's
    state the early-exit pass's, side by side in the order given, for single- and multi-token labels."""
    from sentiq.core.batching import gathered

    prefix, bodies = _bodies(engine)
    engine.planner.max_tokens = 40  # several batches
    hidden = engine.model.config.hidden_size
    shape = (len(bodies), len(labels) + hidden * len(layers))
    got = gathered(engine.score_batches(prefix, bodies, labels, states=layers), shape)
    np.testing.assert_allclose(got[:, : len(labels)], engine.score(prefix, bodies, labels), rtol=0, atol=1e-5)
    for j, layer in enumerate(layers):
        states = gathered(engine.state_batches(prefix, bodies, layer), (len(bodies), hidden))
        start = len(labels) + hidden * j
        np.testing.assert_allclose(got[:, start : start + hidden], states, rtol=0, atol=1e-4)
    assert not any(layer._forward_hooks for layer in engine.model.model.layers)  # the hooks are gone


def test_fewer_layers_give_other_states_and_a_bad_depth_is_refused(engine: Engine) -> None:
    from sentiq.errors import OptionError

    prefix, bodies = _bodies(engine)
    full = np.concatenate([d.result for d in engine.state_batches(prefix, bodies[:1])])
    first = np.concatenate([d.result for d in engine.state_batches(prefix, bodies[:1], layers=1)])
    assert np.abs(full - first).max() > 1e-3
    for bad in (0, 3, -1):
        with pytest.raises(OptionError, match=r"--layer must be between 1 and 2 \(this model's layers\)"):
            list(engine.state_batches(prefix, bodies, layers=bad))
    before = engine.score(prefix, bodies[:2], [[3]])
    with pytest.raises(OptionError):
        list(engine.state_batches(prefix, bodies, layers=9))
    np.testing.assert_array_equal(engine.score(prefix, bodies[:2], [[3]]), before)  # nothing left cut


def test_the_stage_clock_pauses_a_stage_while_another_runs_inside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiq.core import stages

    now = iter(range(100))
    monkeypatch.setattr(stages.time, "perf_counter", lambda: float(next(now)))
    clock = stages.StageClock()
    with clock.stage("forward"):  # every reading of the clock is one second later than the one before
        with clock.stage("tokenize"):
            pass
        with clock.stage("tokenize"):
            pass
    # forward counts 0-1, 4-5 and 8-9; tokenize 2-3 and 6-7; the readings between them (the clock's own
    # bookkeeping) count for neither
    assert dict(clock.seconds) == {"forward": 3.0, "tokenize": 2.0}
    clock.clear()
    assert not clock.seconds
