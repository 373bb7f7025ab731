"""Byte-level BPE tokenizer: training, round trips, special tokens, persistence, corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimodal.data.manifest import Manifest, QuestionRecord, Sample
from trimodal.data.tokenizer import (
    SPECIAL_TOKENS,
    TextTokenizer,
    manifest_texts,
    train_tokenizer,
)

CORPUS = [
    "a small red circle left of a large blue square",
    "a large green triangle above a small yellow star",
    "what color is the circle?",
    "how many squares are there?",
    "is there a purple hexagon?",
    "yes",
    "no",
    "two",
    "the orange diamond is right of the white circle.",
] * 5

VOCAB_SIZE = 300


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, min_frequency=2)


@pytest.mark.parametrize(
    "text",
    [
        "a small red circle",
        "what color is the circle?",
        "punctuation: commas, dots... (brackets) & quotes 'x' \"y\"!",
        "café crème, naïve — déjà vu é",
        "unseen words zebra quokka 12345",
        "emoji 🙂 and 中文",
        "  leading and  double   spaces ",
        "line\nbreak\ttab",
        "",
    ],
)
def test_round_trip(tokenizer: TextTokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == text


def test_no_unknown_ids_for_any_text(tokenizer: TextTokenizer) -> None:
    ids = tokenizer.encode("ünïcödé ✓ ∑ 𝄞")
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == "ünïcödé ✓ ∑ 𝄞"


def test_merges_learned_from_corpus(tokenizer: TextTokenizer) -> None:
    # frequent words become fewer tokens than bytes
    assert len(tokenizer.encode("circle")) < len(b"circle")
    assert len(tokenizer.encode("a small red circle")) < len("a small red circle")


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        ("A Small RED Circle", "a small red circle"),
        ("WHAT COLOR IS THE CIRCLE?", "what color is the circle?"),
        ("CAFÉ É", "café é"),
    ],
)
def test_case_insensitive(tokenizer: TextTokenizer, upper: str, lower: str) -> None:
    assert tokenizer.encode(upper) == tokenizer.encode(lower)
    assert tokenizer.decode(tokenizer.encode(upper)) == lower


def test_nfkc_normalization(tokenizer: TextTokenizer) -> None:
    # "e" + combining acute and the ligature "ﬁ" normalize to "é" and "fi"
    assert tokenizer.encode("e\u0301") == tokenizer.encode("\u00e9")
    assert tokenizer.encode("\ufb01ve") == tokenizer.encode("five")


def test_special_tokens(tokenizer: TextTokenizer) -> None:
    specials = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id]
    assert len(set(specials)) == 4
    assert [tokenizer.tokenizer.id_to_token(i) for i in specials] == list(SPECIAL_TOKENS)
    plain = tokenizer.encode("a red star")
    wrapped = tokenizer.encode("a red star", add_special_tokens=True)
    assert wrapped == [tokenizer.bos_id, *plain, tokenizer.eos_id]
    assert not set(specials) & set(plain)
    assert tokenizer.decode(wrapped) == "a red star"
    assert "<bos>" in tokenizer.decode(wrapped, skip_special_tokens=False)
    assert tokenizer.encode("", add_special_tokens=True) == [tokenizer.bos_id, tokenizer.eos_id]


def test_encode_batch_matches_encode(tokenizer: TextTokenizer) -> None:
    texts = ["a red star", "WHAT is this?", "", "é"]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(t) for t in texts]
    assert tokenizer.encode_batch(texts, add_special_tokens=True) == [
        tokenizer.encode(t, add_special_tokens=True) for t in texts
    ]


def test_vocab_size(tokenizer: TextTokenizer) -> None:
    assert 256 + len(SPECIAL_TOKENS) < tokenizer.vocab_size <= VOCAB_SIZE
    ids = {i for text in CORPUS for i in tokenizer.encode(text)}
    assert max(ids) < tokenizer.vocab_size


def test_save_load_round_trip(tokenizer: TextTokenizer, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tokenizer.json"
    tokenizer.save(path)
    assert path.is_file()
    loaded = TextTokenizer.load(path)
    texts = [*CORPUS[:9], "Unseen TEXT, with é and 🙂!"]
    assert [loaded.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
    assert loaded.vocab_size == tokenizer.vocab_size
    assert (loaded.pad_id, loaded.unk_id, loaded.bos_id, loaded.eos_id) == (
        tokenizer.pad_id,
        tokenizer.unk_id,
        tokenizer.bos_id,
        tokenizer.eos_id,
    )
    assert loaded.decode(loaded.encode("Déjà vu")) == "déjà vu"
    # no temporary files left beside it
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        TextTokenizer.load(tmp_path / "absent.json")


def test_wrapping_a_tokenizer_without_specials_fails() -> None:
    from tokenizers import Tokenizer, models

    with pytest.raises(ValueError, match="lacks special tokens"):
        TextTokenizer(Tokenizer(models.BPE()))


def test_manifest_texts_train_split_only(tmp_path: Path) -> None:
    samples = [
        Sample(
            id="a",
            split="train",
            line=1,
            text="a red circle",
            questions=(
                QuestionRecord("what color?", "red", "color"),
                QuestionRecord("how many?", "one"),
            ),
        ),
        Sample(id="b", split="val", line=2, text="validation caption"),
        Sample(
            id="c",
            split="train",
            line=3,
            image=tmp_path / "x.png",
            questions=(QuestionRecord("is it big?", "yes"),),
        ),
        Sample(id="d", split="test", line=4, questions=(QuestionRecord("test q?", "no"),)),
        Sample(id="e", split="train", line=5, text="a blue star"),
    ]
    manifest = Manifest(tmp_path / "m.jsonl", samples)
    assert list(manifest_texts(manifest)) == [
        "a red circle",
        "what color?",
        "red",
        "how many?",
        "one",
        "is it big?",
        "yes",
        "a blue star",
    ]
    assert list(manifest_texts(manifest, splits=("val", "test"))) == [
        "validation caption",
        "test q?",
        "no",
    ]
