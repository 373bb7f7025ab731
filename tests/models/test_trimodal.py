"""The composed model: fusion of any subset, image-context pooling, atomic checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trimodal.config import load_config
from trimodal.data.tokenizer import train_tokenizer
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput

ROOT = Path(__file__).resolve().parents[2]


def _model(*overrides: str, vocab_size: int = 50) -> TriModalModel:
    torch.manual_seed(0)
    config = load_config(ROOT / "configs" / "tiny.yaml", list(overrides))
    return TriModalModel(
        config, vocab_size, Vocabulary(["yes", "no", "red"], ["color:red", "shape:star"])
    ).eval()


def test_image_context_pools_the_grid_by_hand() -> None:
    model = _model("model.fusion_image_pool=2", "model.image.stem_channels=[8, 8, 8]")  # 4x4 grid
    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    output = EncoderOutput(tokens, torch.ones(2, 16, dtype=torch.bool), torch.zeros(2, 4))
    pooled = model.image_context(output)
    assert pooled.tokens.shape == (2, 4, 3) and pooled.mask.all()
    grid = tokens.reshape(2, 4, 4, 3)
    top_left = grid[:, :2, :2].mean(dim=(1, 2))
    bottom_right = grid[:, 2:, 2:].mean(dim=(1, 2))
    assert torch.allclose(pooled.tokens[:, 0], top_left) and torch.allclose(
        pooled.tokens[:, 3], bottom_right
    )
    with pytest.raises(ValueError, match="does not divide"):
        _model("model.fusion_image_pool=3").image_context(output)


def test_fusion_positions_add_the_column_and_row_tables_by_hand() -> None:
    model = _model("model.fusion_positions=true")
    tokens = torch.randn(2, 9, 8)
    output = EncoderOutput(tokens, torch.ones(2, 9, dtype=torch.bool), torch.zeros(2, 4))
    added = model.image_context(output).tokens - tokens  # (2, 9, 8): a 3x3 grid, width 8
    for token in range(9):
        row, column = divmod(token, 3)
        expected = []
        for place in (column, row):  # channels 0-3: the column; 4-7: the row
            expected += [
                math.sin(place),
                math.cos(place),
                math.sin(place / 100.0),
                math.cos(place / 100.0),
            ]
        assert torch.allclose(added[:, token], torch.tensor(expected).expand(2, 8), atol=1e-6)
    unchanged = _model().image_context(output).tokens
    assert torch.equal(unchanged, tokens)
    with pytest.raises(ValueError, match="square grid"):
        model.image_context(
            EncoderOutput(
                torch.randn(1, 6, 8), torch.ones(1, 6, dtype=torch.bool), torch.zeros(1, 4)
            )
        )


def test_answers_from_any_subset_of_modalities() -> None:
    model = _model()
    image = model.image_context(model.encode("image", torch.randn(2, 3, 64, 64)))
    text = model.encode(
        "text", torch.randint(4, 50, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    ).sequence()
    audio = model.encode(
        "audio", torch.randn(2, 64, 80), torch.ones(2, 80, dtype=torch.bool)
    ).sequence()
    for inputs in (
        {"image": image, "text": text},
        {"image": image, "audio": audio},
        {"text": text},
        {"image": image},
    ):
        assert model.answer_logits(inputs).shape == (2, 3)


def test_checkpoint_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(
        ["a red star", "is there a red star?", "yes", "no"] * 5, vocab_size=300
    )
    model = _model(vocab_size=tokenizer.vocab_size)
    target = tmp_path / "ckpt"
    model.save_pretrained(target, tokenizer, {"note": "first"})
    loaded = TriModalModel.from_pretrained(target)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.vocabulary == model.vocabulary and loaded.config == model.config

    class Boom(RuntimeError):
        pass

    def failing_write(*args: object, **kwargs: object) -> None:
        raise Boom

    original = model.write_files
    model.write_files = failing_write  # type: ignore[method-assign]
    with pytest.raises(Boom):
        model.save_pretrained(target, tokenizer)
    model.write_files = original  # type: ignore[method-assign]
    # The failed save left the previous checkpoint whole, and no staging folder behind.
    assert TriModalModel.from_pretrained(target).vocabulary == model.vocabulary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_causal_questions_mask_questions_only() -> None:
    torch.manual_seed(0)
    model = _model("model.text.causal_questions=true").eval()
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    changed = ids.clone()
    changed[:, 3] = (changed[:, 3] % 49) + 1  # a different word at position 3
    with torch.no_grad():
        question, question_changed = (
            model.encode_question(ids, mask),
            model.encode_question(changed, mask),
        )
        caption, caption_changed = (
            model.encode("text", ids, mask),
            model.encode("text", changed, mask),
        )
    # Causal: tokens before position 3 cannot see the change; bidirectional captions can.
    assert torch.allclose(question.tokens[:, :3], question_changed.tokens[:, :3], atol=1e-6)
    assert not torch.allclose(question.tokens[:, 3:5], question_changed.tokens[:, 3:5])
    assert not torch.allclose(caption.tokens[:, :3], caption_changed.tokens[:, :3])
    # The same weights: a caption encoded with the causal override equals the question.
    forced = model.encoders["text"](ids, mask, causal=True)
    assert torch.allclose(forced.tokens, question.tokens, atol=1e-6)


def test_greedy_ctc_merges_repeats_drops_blanks_and_padding_by_hand() -> None:
    from trimodal.models.trimodal import greedy_ctc

    blank = 5
    paths = [
        [blank, 2, 2, blank, 2, 3, 3, 1],  # -> 2 2 3 1 (a blank splits the repeated 2)
        [4, 4, 4, blank, 1, 1, 0, 0],  # padded after 5 steps -> 4 1
        [blank] * 8,  # nothing -> one padding token
    ]
    scores = torch.full((3, 8, blank + 1), -1.0)
    for row, path in enumerate(paths):
        for step, best in enumerate(path):
            scores[row, step, best] = 1.0
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[1, 5:] = False
    ids, out_mask = greedy_ctc(scores, mask)
    assert ids.shape == out_mask.shape == (3, 4)
    assert ids[0].tolist() == [2, 2, 3, 1] and out_mask[0].all()
    assert ids[1, :2].tolist() == [4, 1] and out_mask[1].tolist() == [True, True, False, False]
    assert ids[2, 0] == 0 and out_mask[2].tolist() == [True, False, False, False]


def test_a_spoken_question_is_answered_as_its_transcript() -> None:
    model = _model("model.transcriber_depth=1")
    assert model.transcriber is not None and _model().transcriber is None
    image = model.image_context(model.encode("image", torch.randn(2, 3, 64, 64)))
    audio = model.encode(
        "audio", torch.randn(2, 64, 80), torch.ones(2, 80, dtype=torch.bool)
    ).sequence()
    with torch.no_grad():
        scores = model.transcriber(audio.tokens, audio.mask)
        # By hand: argmax, merge repeats, drop blanks, then the typed path on those ids.
        expected = []
        for row in range(2):
            words, previous = [], None
            for best in scores[row].argmax(-1).tolist():
                if best != previous and best != model.transcriber.blank:
                    words.append(best)
                previous = best
            ids = torch.tensor([words or [0]])
            text = model.encode_question(ids, torch.ones_like(ids, dtype=torch.bool)).sequence()
            expected.append(
                model.answer_logits({"image": image.select(torch.tensor([row])), "text": text})
            )
        spoken = model.answer_logits({"image": image, "audio": audio})
        assert torch.allclose(spoken, torch.cat(expected), atol=1e-5)
        direct = model.answer_logits({"image": image, "audio": audio}, transcribe=False)
        assert not torch.allclose(direct, spoken)
