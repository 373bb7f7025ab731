"""ManifestDataset items and Collator batches over a three-sample manifest with mixed modalities."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from trimodal.data.dataset import Batch, Collator, ManifestDataset, ModalityBatch
from trimodal.data.manifest import Sample, load_manifest
from trimodal.data.tokenizer import TextTokenizer, train_tokenizer

FULL_AUDIO, QUESTION_AUDIO, MEDIA_AUDIO = 8000, 4800, 12345  # samples at 16 kHz
FULL_TEXT = "a red circle"
TEXT_ONLY = "a large blue square left of a small red circle"
QUESTIONS = ["what color is the circle?", "how many circles are there?"]


def _frames(samples: int) -> int:
    return samples // 160 + 1


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    corpus = [FULL_TEXT, TEXT_ONLY, *QUESTIONS, "red", "one", "a green star"] * 4
    return train_tokenizer(corpus, vocab_size=320, min_frequency=2)


@pytest.fixture
def samples(tmp_path: Path, make_png, make_wav, write_jsonl) -> list[Sample]:
    make_png(tmp_path / "images" / "full.png", color=(255, 0, 0), size=(64, 64))
    make_png(tmp_path / "images" / "media.png", color=(0, 0, 255), size=(32, 32))
    make_wav(tmp_path / "audio" / "full.wav", samples=FULL_AUDIO)
    make_wav(tmp_path / "audio" / "q0.wav", samples=QUESTION_AUDIO)
    make_wav(tmp_path / "audio" / "media.wav", samples=MEDIA_AUDIO)
    rows = [
        {
            "id": "full",
            "split": "train",
            "image": "images/full.png",
            "audio": "audio/full.wav",
            "text": FULL_TEXT,
            "questions": [
                {
                    "question": QUESTIONS[0],
                    "answer": "red",
                    "family": "color",
                    "spoken_question": "audio/q0.wav",
                },
                {"question": QUESTIONS[1], "answer": "one"},
            ],
        },
        {"id": "text", "split": "train", "text": TEXT_ONLY},
        {"id": "media", "split": "train", "image": "images/media.png", "audio": "audio/media.wav"},
    ]
    return load_manifest(write_jsonl(tmp_path / "manifest.jsonl", rows)).samples


def _pixel(c: int) -> float:
    return ((c / 255) - 0.5) / 0.25


# ---------------------------------------------------------------------------------------------
# sample view


def test_sample_view_keys_follow_modalities(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer)
    assert len(dataset) == 3
    full, text, media = (dataset[i] for i in range(3))
    assert set(full) == {"id", "image", "audio", "text"}
    assert set(text) == {"id", "text"}
    assert set(media) == {"id", "image", "audio"}
    assert [full["id"], text["id"], media["id"]] == ["full", "text", "media"]


def test_sample_view_shapes_and_values(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer)
    full, text, media = (dataset[i] for i in range(3))
    assert full["image"].shape == media["image"].shape == (3, 64, 64)
    red = torch.tensor([_pixel(255), _pixel(0), _pixel(0)]).view(3, 1, 1).expand(3, 64, 64)
    blue = torch.tensor([_pixel(0), _pixel(0), _pixel(255)]).view(3, 1, 1).expand(3, 64, 64)
    torch.testing.assert_close(full["image"], red)
    torch.testing.assert_close(media["image"], blue)
    assert full["audio"].shape == (64, _frames(FULL_AUDIO))
    assert media["audio"].shape == (64, _frames(MEDIA_AUDIO))
    assert full["audio"].dtype == torch.float32
    assert full["text"].dtype == torch.long
    assert full["text"].tolist() == tokenizer.encode(FULL_TEXT)
    assert text["text"].tolist() == tokenizer.encode(TEXT_ONLY)


def test_text_only_modality_drops_media(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, modalities=("text",))
    items = [dataset[i] for i in range(3)]
    assert [set(item) for item in items] == [{"id", "text"}, {"id", "text"}, {"id"}]


def test_image_audio_modalities_drop_text(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, modalities=("image", "audio"))
    assert [set(dataset[i]) for i in range(3)] == [
        {"id", "image", "audio"},
        {"id"},
        {"id", "image", "audio"},
    ]


# ---------------------------------------------------------------------------------------------
# collation


def test_collator_batches_each_modality_over_rows_that_have_it(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer)
    batch = Collator(pad_id=tokenizer.pad_id)([dataset[i] for i in range(3)])
    assert isinstance(batch, Batch)
    assert batch.ids == ["full", "text", "media"]
    assert len(batch) == 3
    assert set(batch.modalities) == {"image", "audio", "text"}
    assert "question" not in batch
    assert batch.strings == {}

    full_ids, long_ids = tokenizer.encode(FULL_TEXT), tokenizer.encode(TEXT_ONLY)
    assert len(full_ids) < len(long_ids)
    text = batch["text"]
    assert isinstance(text, ModalityBatch)
    assert text.rows.tolist() == [0, 1]
    assert text.rows.dtype == torch.long
    assert text.values.shape == (2, len(long_ids))
    assert text.values[0].tolist() == full_ids + [tokenizer.pad_id] * (
        len(long_ids) - len(full_ids)
    )
    assert text.values[1].tolist() == long_ids
    assert text.mask is not None
    assert text.mask.dtype == torch.bool
    assert text.mask[0].tolist() == [True] * len(full_ids) + [False] * (
        len(long_ids) - len(full_ids)
    )
    assert bool(text.mask[1].all())

    image = batch["image"]
    assert image.rows.tolist() == [0, 2]
    assert image.mask is None
    assert image.values.shape == (2, 3, 64, 64)
    assert float(image.values[0, 0, 0, 0]) == pytest.approx(_pixel(255))
    assert float(image.values[1, 2, 0, 0]) == pytest.approx(_pixel(255))

    audio = batch["audio"]
    short, long = _frames(FULL_AUDIO), _frames(MEDIA_AUDIO)
    assert audio.rows.tolist() == [0, 2]
    assert audio.values.shape == (2, 64, long)
    assert audio.mask is not None
    assert audio.mask.shape == (2, long)
    assert audio.mask[0].tolist() == [True] * short + [False] * (long - short)
    assert bool(audio.mask[1].all())
    torch.testing.assert_close(audio.values[0, :, :short], dataset[0]["audio"])
    assert bool((audio.values[0, :, short:] == 0).all())
    torch.testing.assert_close(audio.values[1], dataset[2]["audio"])


def test_collator_uses_its_pad_id(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, modalities=("text",))
    batch = Collator(pad_id=-7)([dataset[0], dataset[1]])
    n = len(tokenizer.encode(FULL_TEXT))
    assert set(batch["text"].values[0, n:].tolist()) == {-7}
    assert -7 not in batch["text"].values[0, :n].tolist()


def test_collator_skips_absent_modalities(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer)
    batch = Collator()([dataset[1]])
    assert set(batch.modalities) == {"text"}
    assert "image" not in batch and "audio" not in batch
    assert batch["text"].rows.tolist() == [0]


def test_batch_to_device_keeps_contents(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, modalities=("text",))
    moved = Collator()([dataset[0], dataset[1]])["text"].to("cpu")
    assert moved.rows.tolist() == [0, 1]
    assert moved.mask is not None and moved.mask.shape == moved.values.shape


def test_dataloader_with_collator(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer)
    loader = DataLoader(dataset, batch_size=2, shuffle=False, collate_fn=Collator(tokenizer.pad_id))
    batches = list(loader)
    assert [b.ids for b in batches] == [["full", "text"], ["media"]]
    assert batches[0]["image"].rows.tolist() == [0]
    assert batches[1]["audio"].rows.tolist() == [0]
    assert "text" not in batches[1]


# ---------------------------------------------------------------------------------------------
# question view


def test_question_view_items(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, view="question")
    assert len(dataset) == 2  # only "full" has questions
    first, second = dataset[0], dataset[1]
    assert first["id"] == "full#q0"
    assert second["id"] == "full#q1"
    assert first["question"].tolist() == tokenizer.encode(QUESTIONS[0])
    assert second["question"].tolist() == tokenizer.encode(QUESTIONS[1])
    assert first["question"].dtype == torch.long
    assert (first["answer"], first["family"]) == ("red", "color")
    assert second["answer"] == "one"
    assert "family" not in second
    assert first["spoken_question"].shape == (64, _frames(QUESTION_AUDIO))
    assert "spoken_question" not in second
    # the sample's image comes along; its caption and caption audio do not
    assert set(first) == {"id", "image", "question", "answer", "family", "spoken_question"}
    assert set(second) == {"id", "image", "question", "answer"}


def test_question_view_collation(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, view="question")
    batch = Collator(pad_id=tokenizer.pad_id)([dataset[0], dataset[1]])
    assert batch.ids == ["full#q0", "full#q1"]
    assert batch.strings == {"answer": ["red", "one"], "family": ["color", None]}
    assert batch["question"].rows.tolist() == [0, 1]
    spoken = batch["spoken_question"]
    assert spoken.rows.tolist() == [0]
    assert spoken.values.shape == (1, 64, _frames(QUESTION_AUDIO))
    assert spoken.mask is not None and bool(spoken.mask.all())
    lengths = [len(tokenizer.encode(q)) for q in QUESTIONS]
    assert batch["question"].mask is not None
    assert batch["question"].mask.sum(dim=1).tolist() == lengths


def test_question_view_text_only_drops_spoken_question_and_image(samples, tokenizer) -> None:
    dataset = ManifestDataset(samples, tokenizer, modalities=("text",), view="question")
    assert set(dataset[0]) == {"id", "question", "answer", "family"}
    assert set(dataset[1]) == {"id", "question", "answer"}


def test_empty_question_view(samples, tokenizer) -> None:
    assert len(ManifestDataset(samples[1:], tokenizer, view="question")) == 0


# ---------------------------------------------------------------------------------------------
# argument validation


def test_invalid_view(samples, tokenizer) -> None:
    with pytest.raises(ValueError, match="view must be 'sample' or 'question'"):
        ManifestDataset(samples, tokenizer, view="questions")  # type: ignore[arg-type]


@pytest.mark.parametrize("modalities", [("video",), ("text", "speech"), ("Image",)])
def test_invalid_modality(samples, tokenizer, modalities) -> None:
    with pytest.raises(ValueError, match="unknown modalities"):
        ManifestDataset(samples, tokenizer, modalities=modalities)
