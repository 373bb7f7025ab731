"""A byte-level BPE tokenizer trained with Hugging Face ``tokenizers`` and saved as tokenizer.json.

Text is NFKC-normalized and lower-cased, then split into bytes, so any string encodes (no
unknown characters) and ``decode(encode(text)) == text.lower()`` for NFKC-normal text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from trimodal.data.manifest import Manifest
from trimodal.io import atomic_write_text

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS)


class TextTokenizer:
    """Thin wrapper over a ``tokenizers.Tokenizer`` with the special ids trimodal needs."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
        found = {token: index for token, index in ids.items() if index is not None}
        missing = [token for token in SPECIAL_TOKENS if token not in found]
        if missing:
            raise ValueError(
                f"tokenizer lacks special tokens {missing}; train it with train_tokenizer()"
            )
        self.pad_id, self.unk_id = found[PAD], found[UNK]
        self.bos_id, self.eos_id = found[BOS], found[EOS]

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` wrapped in ``<bos> ... <eos>``."""
        ids = self.tokenizer.encode(text).ids
        return [self.bos_id, *ids, self.eos_id] if add_special_tokens else list(ids)

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        """:meth:`encode` for many texts (parallel in the Rust core)."""
        encoded = [e.ids for e in self.tokenizer.encode_batch(texts)]
        if add_special_tokens:
            return [[self.bos_id, *ids, self.eos_id] for ids in encoded]
        return [list(ids) for ids in encoded]

    def encode_batch_with_offsets(
        self, texts: list[str]
    ) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Ids of each text and each id's ``(start, end)`` character span in that text."""
        return [(list(e.ids), list(e.offsets)) for e in self.tokenizer.encode_batch(texts)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (special tokens dropped by default)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def decode_rows(self, rows: list[list[int]]) -> list[str]:
        """:meth:`decode` of many rows (special tokens dropped; parallel in the Rust core)."""
        return [str(text) for text in self.tokenizer.decode_batch(rows)]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write tokenizer.json atomically."""
        atomic_write_text(path, self.tokenizer.to_str(pretty=True))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextTokenizer:
        """Read a tokenizer.json written by :meth:`save`."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        return cls(Tokenizer.from_file(str(path)))


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2
) -> TextTokenizer:
    """Train a byte-level BPE on ``texts``.

    Args:
        texts: training sentences.
        vocab_size: target vocabulary size including the 256 byte symbols and special tokens.
        min_frequency: merges seen fewer times are not learned.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return TextTokenizer(tokenizer)


def manifest_texts(manifest: Manifest, splits: tuple[str, ...] = ("train",)) -> Iterator[str]:
    """Captions, questions and answers of the samples in ``splits`` (the tokenizer's corpus)."""
    for sample in manifest.split(*splits):
        if sample.text is not None:
            yield sample.text
        for question in sample.questions:
            yield question.question
            yield question.answer
