"""A tiny random Qwen2 model and a small BPE tokenizer with a ChatML template, built once per test
session and saved to disk, so every test loads them through the real from_pretrained(path) code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Classify the sentiment of this movie review.",
    "Review: a great film with a moving story and fine acting.",
    "Answer with one word: positive or negative.",
    "Positive Negative positive negative Positive Negative",
    "The plot was dull, the dialogue lifeless, a boring mess of a movie.",
    "An absolute delight from start to finish, I loved every minute.",
    "You are a helpful assistant. N/A [MASK]",
    "very positive, negative indeed, the sentiment is positive.",
] * 20


def build_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)


def build_model(folder: Path, vocab_size: int, seed: int = 0, layers: int = 2) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config)
    # Like Qwen's published defaults: sampling on. Greedy methods must not inherit it.
    model.generation_config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, top_k=20)
    model.save_pretrained(folder, safe_serialization=True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-qwen2")
    build_tokenizer(folder)
    build_model(folder, vocab_size=len(AutoTokenizer.from_pretrained(folder)))
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_model: Path):
    from sentiq.core.models import load_model

    return load_model(str(tiny_model), "cpu", "float32")


@pytest.fixture
def engine(tiny_lm):
    from sentiq.core.engine import Engine

    return Engine(tiny_lm)


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    rows = [(f"r{i}", f"review number {i} was {'great' if i % 2 else 'dull'}", i % 2) for i in range(12)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


FIT_TEXTS = ("an absolute delight, I loved it", "a dull boring mess of a movie")


def fit_data(folder: Path, n: int = 24, name: str = "fit.csv") -> Path:
    """Two distinct texts, each repeated with a number: what the tiny model's states tell apart."""
    good, bad = FIT_TEXTS
    rows = [(f"t{i}", f"{good if i % 2 else bad} {i}", "positive" if i % 2 else "negative") for i in range(n)]
    path = folder / name
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_fit(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One fit of the tiny model made through the library (n=24, seed 0), shared by the tests that read it."""
    import sentiq

    folder = tmp_path_factory.mktemp("fits")
    return sentiq.fit(
        str(tiny_model), dataset=str(fit_data(folder)), n=24, output_dir=folder, device="cpu", dtype="float32"
    )


@pytest.fixture(scope="session")
def deep_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with four layers: room for early exits before its last."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("deep-qwen2")
    build_tokenizer(folder)
    build_model(folder, vocab_size=len(AutoTokenizer.from_pretrained(folder)), layers=4)
    return folder


@pytest.fixture(scope="session")
def exits_fit(deep_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A fit of the four-layer model with early exits at layers 1 and 2 (n=40, seed 0)."""
    import sentiq

    folder = tmp_path_factory.mktemp("exit-fits")
    return sentiq.fit(
        str(deep_model),
        dataset=str(fit_data(folder, n=40)),
        n=40,
        exits=[1, 2],
        output_dir=folder,
        device="cpu",
        dtype="float32",
    )


@pytest.fixture(scope="session")
def cascade_fit(deep_model: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A cascade across models: the four-layer model with an exit at layer 2, then the two-layer model."""
    import sentiq

    folder = tmp_path_factory.mktemp("cascade-fits")
    return sentiq.fit(
        str(deep_model),
        dataset=str(fit_data(folder, n=40)),
        n=40,
        exits=[2],
        then=str(tiny_model),
        output_dir=folder,
        device="cpu",
        dtype="float32",
    )


@pytest.fixture(scope="session")
def answering_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model made to answer with a label word: 'Positive' and 'Negative' become tokens of their
    own whose vocabulary rows are the row of the token it answers with anyway, doubled, each plus its own
    noise, so that its first answer token is one of them and which one depends on the text (answers are
    one token long where max_new_tokens is 1)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("answering-qwen2")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = tok(
        tok.apply_chat_template([{"role": "user", "content": "a review"}], tokenize=False, add_generation_prompt=True)
    )
    tok.add_tokens(["Positive", "Negative"])
    model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        usual = int(model(torch.tensor([ids["input_ids"]])).logits[0, -1].argmax())
        head = model.lm_head.weight
        g = torch.Generator().manual_seed(0)
        for word in ("Positive", "Negative"):
            (token,) = tok.encode(word)
            head[token] = 2 * head[usual] + 3 * head[usual].norm() * torch.randn(head.shape[1], generator=g)
    tok.save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
