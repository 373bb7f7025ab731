"""The step-level task losses (trimodal.losses: step inputs and frozen outputs, alignment, VQA
and grounding, scene attributes and objects, transcription, bind, generation) against naive
references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trimodal.config import load_config
from trimodal.data.tensors import SceneTensors, to_float_images
from trimodal.losses.alignment import contrastive_loss
from trimodal.losses.bind import BindTargets, bind_loss
from trimodal.losses.scene import object_grid_targets, object_loss
from trimodal.losses.step import StepInputs, encode_frozen, freeze_perception
from trimodal.losses.vqa import grounding_loss, typed_vqa_loss
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.train.loop import train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]


def naive_targets(
    boxes: torch.Tensor, labels: torch.Tensor, grid: int, background: list[int]
) -> torch.Tensor:
    """Cell by cell, object by object: the nearest covering object's labels, else background."""
    batch, objects, _ = boxes.shape
    out = torch.empty(batch, 3, grid * grid, dtype=torch.long)
    for b in range(batch):
        for row in range(grid):
            for col in range(grid):
                cx, cy = (col + 0.5) / grid, (row + 0.5) / grid
                best, chosen = math.inf, None
                for k in range(objects):
                    if (labels[b, k] < 0).all():
                        continue
                    x, y, radius = boxes[b, k].tolist()
                    distance = math.hypot(cx - x, cy - y)
                    if distance < max(radius, 0.5 / grid) and distance < best:
                        best, chosen = distance, k
                for g in range(3):
                    if chosen is None:
                        value = background[g]
                    else:
                        value = int(labels[b, chosen, g])
                        value = -100 if value < 0 else value
                    out[b, g, row * grid + col] = value
    return out


def test_one_large_centred_object_covers_the_middle_cells() -> None:
    boxes = torch.tensor([[[0.5, 0.5, 0.3]]])
    labels = torch.tensor([[[2, 4, 1]]])
    targets = object_grid_targets(boxes, labels, 4, [7, 6, 2])
    # Centres of the middle four cells are 0.177 from (0.5, 0.5); every other cell is farther
    # than 0.3 (the nearest, e.g. (0.375, 0.125), is 0.395 away).
    middle = [5, 6, 9, 10]
    for g, (value, empty) in enumerate(zip([2, 4, 1], [7, 6, 2], strict=True)):
        expected = torch.full((16,), empty)
        expected[middle] = value
        assert torch.equal(targets[0, g], expected)


def test_a_small_object_still_owns_the_cell_under_its_centre() -> None:
    boxes = torch.tensor([[[0.1, 0.9, 0.02], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[[0, 3, 0], [-1, -1, -1]]])
    targets = object_grid_targets(boxes, labels, 4, [7, 6, 2])
    assert targets[0, 1, 12].item() == 3  # row 3 (y = 0.9), column 0 (x = 0.1)
    assert (targets[0, 1, torch.arange(16) != 12] == 6).all()


def test_targets_match_a_naive_loop_on_random_scenes() -> None:
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(6, 3, 3, generator=generator)
    boxes[..., 2] = boxes[..., 2] * 0.3
    labels = torch.randint(-1, 5, (6, 3, 3), generator=generator)
    labels[0, 2] = -1  # a padding object
    for grid in (4, 8):
        expected = naive_targets(boxes, labels, grid, [5, 5, 5])
        assert torch.equal(object_grid_targets(boxes, labels, grid, [5, 5, 5]), expected)


def test_object_loss_reaches_the_image_tower_and_skips_rows_without_scenes(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml")
    data = prepare_data(config, tiny_world[0])
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    rows = data.train_rows[:6]
    step = StepInputs(model, data.tensors, rows, torch.Generator().manual_seed(0))
    loss = object_loss(step)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    first_conv = next(model.encoders["image"].stem.parameters())
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    # By hand: the mean cross-entropy of each group over every cell of every row, summed.
    with torch.no_grad():
        logits = model.object_logits(step.image())
        grid = math.isqrt(logits[0].shape[1])
        targets = object_grid_targets(
            data.tensors.object_boxes[rows],
            data.tensors.object_labels[rows],
            grid,
            [c - 1 for c in model.object_classes()],
        )
        by_hand = sum(
            -torch.log_softmax(group, -1).gather(-1, targets[:, g].unsqueeze(-1)).mean()
            for g, group in enumerate(logits)
        )
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-5)
    no_scene = data.tensors.subset(rows)
    no_scene.has_scene[:] = False
    blind = StepInputs(model, no_scene, torch.arange(6), torch.Generator().manual_seed(0))
    assert float(object_loss(blind)) == 0.0


def test_object_classes_follow_the_vocabulary() -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml")
    attributes = ["color:red", "color:blue", "shape:star", "size:small", "size:large", "count:one"]
    model = TriModalModel(config, 50, Vocabulary(answers=["yes"], attributes=attributes))
    assert model.object_classes() == [3, 2, 3]


def test_unknown_task_names_are_clear_errors(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml", ["train.align.auxiliary=[shapes]"])
    with pytest.raises(ValueError, match=r"train.align.auxiliary: unknown task\(s\) \['shapes'\]"):
        train(config, tiny_world[0], tmp_path / "run", progress=False)
    config = load_config(ROOT / "configs" / "tiny.yaml", ["train.multitask.tasks=[vqa]"])
    with pytest.raises(ValueError, match=r"train.multitask.tasks: unknown task\(s\) \['vqa'\]"):
        train(config, tiny_world[0], tmp_path / "run2", progress=False)
    config = load_config(ROOT / "configs" / "tiny.yaml", ["train.align.pairs=[image-smell]"])
    with pytest.raises(ValueError, match=r"train.align.pairs: 'image-smell' is not of the form"):
        train(config, tiny_world[0], tmp_path / "run3", progress=False)
    config = load_config(ROOT / "configs" / "tiny.yaml", ["train.align.pairs=[image-video]"])
    with pytest.raises(ValueError, match=r"'image-video' needs a video encoder"):
        train(config, tiny_world[0], tmp_path / "run3b", progress=False)
    config = load_config(
        ROOT / "configs" / "tiny.yaml", ["train.align.anchors={image-audio: audio}"]
    )
    with pytest.raises(ValueError, match=r"train.align.anchors: 'image-audio' is not one of"):
        train(config, tiny_world[0], tmp_path / "run4", progress=False)
    config = load_config(
        ROOT / "configs" / "tiny.yaml", ["train.align.anchors={text-audio: image}"]
    )
    with pytest.raises(ValueError, match=r"anchor of 'text-audio' must be 'text' or 'audio'"):
        train(config, tiny_world[0], tmp_path / "run5", progress=False)


def test_anchors_may_name_a_pair_in_either_order() -> None:
    from trimodal.config import AlignConfig
    from trimodal.train.step import contrastive_anchors

    align = AlignConfig(pairs=["image-text", "text-audio"], anchors={"text-audio": "text"})
    assert contrastive_anchors(align) == {"audio-text": "text"}


POOLED = [
    "model.text.causal=true",
    "model.fusion_positions=true",
    "model.grounding_bins=4",
    "train.multitask.question_pool=true",
    "train.multitask.grounding_weight=0.5",
]


def test_pooled_vqa_loss_is_answer_plus_weighted_grounding_by_hand(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml", POOLED)
    data = prepare_data(config, tiny_world[0])
    assert data.pool is not None
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    rows = data.train_rows[:5]
    step = StepInputs(model, data.tensors, rows, torch.Generator().manual_seed(4))
    loss = typed_vqa_loss(step, 2, data.pool, grounding_weight=0.5)
    loss.backward()
    assert model.grounding_head is not None and model.grounding_head.weight.grad is not None
    assert model.grounding_head.weight.grad.abs().sum() > 0
    # By hand, one question at a time: the same draws, then answer and known-cell entropies.
    positions, indices = data.pool.sample(rows, 2, torch.Generator().manual_seed(4))
    answer_terms, cell_terms = [], []
    with torch.no_grad():
        image = model.image_context(
            model.encode("image", to_float_images(data.tensors.images[rows]))
        )
        for position, index in zip(positions.tolist(), indices.tolist(), strict=True):
            mask = data.pool.mask[index]
            text = model.encode("text", data.pool.ids[index][mask][None], mask[mask][None])
            state = model.fuse(
                {"image": image.select(torch.tensor([position])), "text": text.sequence()}
            )
            answer = int(data.pool.answers[index])
            answer_terms.append(-torch.log_softmax(model.answer_head(state)[0], -1)[answer])
            cells = model.grounding_logits(state)[0]
            for slot, target in enumerate(data.pool.grounding[index].tolist()):
                if target != -100:
                    cell_terms.append(-torch.log_softmax(cells[slot], -1)[target])
    by_hand = torch.stack(answer_terms).mean() + 0.5 * torch.stack(cell_terms).mean()
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-4)


def test_grounding_loss_with_nothing_known_is_zero_and_attached() -> None:
    logits = torch.randn(3, 4, 4, requires_grad=True)
    loss = grounding_loss(logits, torch.full((3, 4), -100))
    loss.backward()
    assert float(loss) == 0.0 and logits.grad is not None


def test_the_tiny_recipe_trains_with_the_pool_and_reloads(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    from trimodal.inference import Model

    config = load_config(ROOT / "configs" / "tiny.yaml", POOLED)
    train(config, tiny_world[0], tmp_path / "run", progress=False)
    model = Model.from_pretrained(tmp_path / "run")
    assert model.network.config.model.text.causal and model.network.grounding_head is not None
    metrics = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any('"vqa_typed"' in line for line in metrics)


REASON = [
    "model.text.causal=true",
    "model.fusion_positions=true",
    "model.grounding_bins=4",
    "train.reason.epochs=2",
    "train.reason.batch_size=4",
    "train.reason.family_weights={relation: 2.0}",
    "train.reason.tasks=[vqa_typed, vqa_spoken, contrastive]",
]


def test_frozen_outputs_match_eval_mode_encoding_row_by_row(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml")
    data = prepare_data(config, tiny_world[0])
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    model.train()
    rows = data.train_rows[:7]
    frozen = freeze_perception(model, data.tensors, rows, {"image", "audio", "spoken"})
    assert model.training  # the mode is restored
    model.eval()
    picked = torch.tensor([int(rows[5]), int(rows[0])])
    alone = {
        "image": lambda r: model.encode("image", to_float_images(data.tensors.images[r])),
        "audio": lambda r: model.encode("audio", *data.tensors.caption_audio.batch(r)),
        "spoken": lambda r: model.encode("audio", *data.tensors.spoken_audio.batch(r)),
    }
    with torch.no_grad():
        for tower, encode in alone.items():
            selected = frozen[tower].select(picked)
            for i, row in enumerate(picked.tolist()):
                one = encode(torch.tensor([row]))
                length = int(one.mask.sum())
                assert selected.mask[i].sum() == length, tower
                assert torch.allclose(selected.tokens[i, :length], one.tokens[0], atol=1e-5)
                assert torch.allclose(selected.pooled[i], one.pooled[0], atol=1e-5), tower
    with pytest.raises(ValueError, match="not encoded"):
        frozen["image"].select(torch.tensor([int(data.train_rows[8])]))


def test_frozen_audio_is_one_augmented_view_when_the_recipe_augments(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    """With ``hear``, frozen clips are encoded after the augmentation drawn from ``seed``: the
    same seed gives the same outputs, the outputs differ from the clean ones, and the image
    tower is untouched."""
    from trimodal.data.mel_effects import AudioAugment
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml")
    data = prepare_data(config, tiny_world[0])
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    rows = data.train_rows[:6]
    towers = {"image", "audio", "spoken"}
    hear = AudioAugment(probability=1.0, rate=0.3, n_mels=config.data.n_mels)
    clean = freeze_perception(model, data.tensors, rows, towers)
    heard = freeze_perception(model, data.tensors, rows, towers, hear, seed=4)
    again = freeze_perception(model, data.tensors, rows, towers, hear, seed=4)
    for tower in ("audio", "spoken"):
        assert torch.equal(heard[tower].pooled, again[tower].pooled)
        assert not torch.allclose(heard[tower].pooled, clean[tower].pooled, atol=1e-3)
    assert torch.equal(heard["image"].pooled, clean["image"].pooled)


def test_frozen_outputs_keep_only_used_positions_and_pad_on_select() -> None:
    """Ragged storage: a row costs its length up to its last real token (holes kept), and a
    selection pads with zeros to its own longest row."""
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3) + 1
    mask = torch.tensor([[True, False, True, False, False], [True, True, True, True, True]])
    pooled = torch.tensor([[1.0], [2.0]])
    rows = torch.tensor([7, 2])

    def encode(chunk: torch.Tensor) -> EncoderOutput:
        at = [rows.tolist().index(int(r)) for r in chunk]
        return EncoderOutput(tokens[at], mask[at], pooled[at])

    frozen = encode_frozen(torch.nn.Linear(1, 1), encode, rows, total_rows=9, chunk=1)
    assert frozen.tokens.shape == (3 + 5, 3)  # not 2 rows x 5
    assert frozen.offsets.tolist() == [0, 3, 8]
    short = frozen.select(torch.tensor([7]))
    assert torch.equal(short.tokens[0], tokens[0, :3])
    assert short.mask.tolist() == [[True, False, True]]
    both = frozen.select(torch.tensor([7, 2, 7]))
    assert both.tokens.shape == (3, 5, 3)
    assert torch.equal(both.tokens[1], tokens[1])
    assert torch.equal(both.tokens[0, :3], tokens[0, :3])
    assert not both.tokens[0, 3:].any()
    assert torch.equal(both.mask[0], torch.tensor([True, False, True, False, False]))
    assert both.pooled[:, 0].tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="at least one row"):
        encode_frozen(torch.nn.Linear(1, 1), encode, rows[:0], total_rows=9)


def _without_caption_audio(
    world: Path, position: int
) -> tuple[TriModalModel, SceneTensors, torch.Tensor]:
    """The tiny recipe's model (eval mode), the world's tensors with the caption audio of
    training row ``rows[position]`` removed, and those 6 ``rows``."""
    import dataclasses

    from trimodal.data.tensors import RaggedAudio
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml")
    data = prepare_data(config, world)
    rows = data.train_rows[:6]
    silent = int(rows[position])
    audio = data.tensors.caption_audio
    start, end = int(audio.offsets[silent]), int(audio.offsets[silent + 1])
    offsets = audio.offsets.clone()
    offsets[silent + 1 :] -= end - start
    frames = torch.cat([audio.frames[:start], audio.frames[end:]])
    tensors = dataclasses.replace(data.tensors, caption_audio=RaggedAudio(frames, offsets))
    assert not bool(tensors.has_audio[silent])
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary).eval()
    return model, tensors, rows


def test_contrastive_leaves_out_a_row_without_caption_audio(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    """The audio-text pair sees only the rows with audio; image-text sees every row."""
    model, tensors, rows = _without_caption_audio(tiny_world[0], position=2)
    step = StepInputs(model, tensors, rows, torch.Generator().manual_seed(0))
    pairs = [("image", "text"), ("audio", "text")]
    with torch.no_grad():
        total, parts = contrastive_loss(step, pairs, "info_nce", 0.2, False)
        voiced = torch.tensor([0, 1, 3, 4, 5])
        audio = model.encode("audio", *tensors.caption_audio.batch(rows[voiced])).pooled
        ids, mask = tensors.caption_ids[rows], tensors.caption_mask[rows]
        text = model.encode_padded_text(ids, mask).pooled
        image = model.encode("image", to_float_images(tensors.images[rows])).pooled
    scale = float(model.temperature().exp())
    audio_text = naive_info_nce(audio, text[voiced], scale)
    image_text = naive_info_nce(image, text, scale)
    assert parts["audio-text"].item() == pytest.approx(audio_text, abs=1e-4)
    assert parts["image-text"].item() == pytest.approx(image_text, abs=1e-4)
    expected = (audio_text + image_text) / 2
    assert total.item() == pytest.approx(expected, abs=1e-4)


def naive_info_nce(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """Symmetric InfoNCE row by row: mean of the a->b and b->a cross-entropies."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    total = 0.0
    for i in range(len(a)):
        row = [scale * float(a[i] @ b[j]) for j in range(len(b))]
        column = [scale * float(a[j] @ b[i]) for j in range(len(a))]
        total += math.log(sum(math.exp(x) for x in row)) - row[i]
        total += math.log(sum(math.exp(x) for x in column)) - column[i]
    return total / (2 * len(a))


def test_a_row_without_caption_audio_is_frozen_as_a_step_encodes_it(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    """Contrastive (stage 2b) and transcription (stage 3) read every row's caption audio; a
    row without any gets the empty encoding a per-step batch gives it, not an error."""
    model, tensors, rows = _without_caption_audio(tiny_world[0], position=2)
    frozen = freeze_perception(model, tensors, rows, {"audio"})["audio"].select(rows)
    with torch.no_grad():
        per_step = model.encode("audio", *tensors.caption_audio.batch(rows))
    assert not bool(frozen.mask[2].any())
    assert torch.equal(frozen.mask, per_step.mask[:, : frozen.mask.shape[1]])
    assert torch.allclose(frozen.pooled, per_step.pooled, atol=1e-5)


def test_the_reason_stage_moves_only_text_fusion_and_heads(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from trimodal.train.loop import prepare_data
    from trimodal.train.schedule import steps_for

    transcribing = [
        "model.transcriber_depth=1",
        "train.reason.tasks=[vqa_typed, vqa_spoken, contrastive, transcribe]",
    ]
    config = load_config(ROOT / "configs" / "tiny.yaml", [*REASON, *transcribing])
    without = load_config(
        ROOT / "configs" / "tiny.yaml", [*REASON[:3], *transcribing, "train.reason.epochs=0"]
    )
    summary = train(config, tiny_world[0], tmp_path / "with", progress=False)
    train(without, tiny_world[0], tmp_path / "without", progress=False)
    rows = len(prepare_data(config, tiny_world[0]).train_rows)
    assert summary["stages"]["reason"] == steps_for(2.0, rows, 4) > 0
    after = load_file(str(tmp_path / "with" / "checkpoint" / "model.safetensors"))
    before = load_file(str(tmp_path / "without" / "checkpoint" / "model.safetensors"))
    assert after.keys() == before.keys()
    # The stages before stage 2b are identical in both runs, so every difference is its doing.
    for name in after:
        if name.startswith(("encoders.image.", "encoders.audio.")):  # BatchNorm statistics too
            assert torch.equal(after[name], before[name]), name
    prefixes = ("encoders.text.", "fusion.", "backbone.", "answer_head.", "grounding_head.")
    for prefix in (*prefixes, "transcriber."):
        names = [name for name in after if name.startswith(prefix)]
        assert names and any(not torch.equal(after[n], before[n]) for n in names), prefix
    records = [
        json.loads(line) for line in (tmp_path / "with" / "metrics.jsonl").read_text().splitlines()
    ]
    reason = [r for r in records if r["stage"] == "reason"]
    expected = {"vqa_typed", "grounding", "vqa_spoken", "contrastive", "transcribe"}
    assert reason and all(expected <= set(r["loss"]) for r in reason)


def naive_bind_loss(
    embedded: torch.Tensor,
    anchors: torch.Tensor,
    targets: list[int],
    groups: list[int],
    scale: float,
) -> float:
    """Row by row: -log softmax over the target and every anchor of different content."""
    total = 0.0
    for row, target in enumerate(targets):
        a = embedded[row] / embedded[row].norm()
        scores = {
            j: scale * float(a @ anchors[j])
            for j in range(len(anchors))
            if j == target or groups[j] != groups[target]
        }
        total += math.log(sum(math.exp(v) for v in scores.values())) - scores[target]
    return total / len(targets)


def test_bind_loss_matches_a_naive_full_gallery_softmax() -> None:
    torch.manual_seed(3)
    config = load_config(ROOT / "configs" / "tiny.yaml")
    vocabulary = Vocabulary(["yes", "no"], ["color:red", "shape:star"])
    model = TriModalModel(config, 50, vocabulary)
    dim = model.encoders["audio"].projection.in_features
    features = torch.randn(6, dim)
    anchors = torch.nn.functional.normalize(torch.randn(6, config.model.embed_dim), dim=-1)
    groups = torch.tensor([0, 1, 0, 2, 3, 1])  # rows 0 and 2 (1 and 5) have identical content
    position = torch.tensor([-1, 4, 0, 2, -1, 5, 1, 3])  # tensors rows 0 and 4 lack a modality
    targets = BindTargets("audio", features, anchors, groups, position)
    rows = torch.tensor([2, 0, 3, 5, 4])
    step = StepInputs(model, None, rows, torch.Generator())  # type: ignore[arg-type]
    loss = bind_loss(step, targets)
    with torch.no_grad():
        embedded = model.encoders["audio"].projection(features[[0, 2, 5]])
    scale = float(model.temperature().exp())
    expected = naive_bind_loss(embedded, anchors, [0, 2, 5], groups.tolist(), scale)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert model.encoders["audio"].projection.weight.grad is not None
    assert model.temperature.logit_scale.grad is None  # the temperature stays fixed
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # as in the stage: only the projection trains
    model.encoders["audio"].projection.requires_grad_(True)
    nobody = StepInputs(model, None, torch.tensor([0, 4]), torch.Generator())  # type: ignore[arg-type]
    empty = bind_loss(nobody, targets)
    assert empty.item() == 0.0
    empty.backward()  # a batch without such rows still steps


def test_the_bind_stage_moves_only_its_projection_head(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from trimodal.train.loop import prepare_data
    from trimodal.train.schedule import steps_for

    bind = ["train.bind.epochs=3", "train.bind.batch_size=8", "train.bind.lr=0.01"]
    config = load_config(ROOT / "configs" / "tiny.yaml", bind)
    summary = train(config, tiny_world[0], tmp_path / "with", progress=False)
    train(
        load_config(ROOT / "configs" / "tiny.yaml"),
        tiny_world[0],
        tmp_path / "without",
        progress=False,
    )
    rows = len(prepare_data(config, tiny_world[0]).train_rows)
    assert summary["stages"]["bind"] == steps_for(3.0, rows, 8) > 0
    after = load_file(str(tmp_path / "with" / "checkpoint" / "model.safetensors"))
    before = load_file(str(tmp_path / "without" / "checkpoint" / "model.safetensors"))
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    assert changed == {"encoders.audio.projection.weight", "encoders.audio.projection.bias"}
    records = [
        json.loads(line) for line in (tmp_path / "with" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"]["bind"] for r in records if r["stage"] == "bind"]
    assert len(losses) >= 2 and losses[-1] < losses[0]


def test_bind_modalities_are_checked(tiny_world: tuple[Path, WorldSummary], tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml", ["train.bind.anchor=audio"])
    with pytest.raises(ValueError, match=r"train\.bind: modality and anchor must be two different"):
        train(config, tiny_world[0], tmp_path / "run", progress=False)


def naive_ctc(log_probs: torch.Tensor, target: list[int], blank: int) -> float:
    """-log P(target | log_probs [T, C]) by the CTC forward recursion, one path state at a time."""
    states = [blank]
    for token in target:
        states += [token, blank]
    probs = log_probs.double().exp()
    alpha = [0.0] * len(states)
    alpha[0] = float(probs[0, blank])
    if len(states) > 1:
        alpha[1] = float(probs[0, states[1]])
    for t in range(1, len(probs)):
        new = []
        for s, label in enumerate(states):
            total = alpha[s] + (alpha[s - 1] if s >= 1 else 0.0)
            if s >= 2 and label != blank and label != states[s - 2]:
                total += alpha[s - 2]
            new.append(total * float(probs[t, label]))
        alpha = new
    end = alpha[-1] + (alpha[-2] if len(states) > 1 else 0.0)
    return -math.log(end)


def test_transcribe_loss_matches_a_naive_ctc_forward_pass(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    from trimodal.losses.transcribe import transcribe_loss
    from trimodal.train.loop import prepare_data

    config = load_config(ROOT / "configs" / "tiny.yaml", ["model.transcriber_depth=1"])
    data = prepare_data(config, tiny_world[0])
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    rows = data.train_rows[:6]
    step = StepInputs(model, data.tensors, rows, torch.Generator().manual_seed(0))
    loss = transcribe_loss(step)
    loss.backward()
    assert model.transcriber is not None and model.transcriber.out.weight.grad is not None
    tensors, terms = data.tensors, []
    with torch.no_grad():
        for row in rows.tolist():
            q = int(tensors.spoken_index[row])
            if q < 0:
                continue
            features, frames = tensors.spoken_audio.batch(torch.tensor([row]))
            audio = model.encode("audio", features, frames)
            used = int(audio.mask.sum())
            scores = model.transcriber(audio.tokens, audio.mask)[0, :used].log_softmax(-1)
            words = tensors.question_ids[row, q][tensors.question_mask[row, q]].tolist()
            terms.append(naive_ctc(scores, words, model.transcriber.blank) / len(words))
    assert len(terms) >= 2
    assert float(loss.detach()) == pytest.approx(sum(terms) / len(terms), rel=1e-4)


def test_the_transcribe_task_needs_a_transcriber(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    config = load_config(
        ROOT / "configs" / "tiny.yaml",
        [*REASON[:3], "train.reason.epochs=1", "train.reason.tasks=[transcribe]"],
    )
    with pytest.raises(ValueError, match="transcriber_depth"):
        train(config, tiny_world[0], tmp_path / "run", progress=False)


def test_caption_variants_stand_in_for_the_stored_caption_in_caption_and_dialogue(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    """With the pool, the caption task's loss is the loss of the same step over tensors whose
    stored captions are the drawn variants; transcription keeps the stored (spoken) caption."""
    from dataclasses import replace

    from trimodal.data.tensors import pad_ids
    from trimodal.losses.generative import generation_loss
    from trimodal.train.loop import prepare_data

    overrides = ["train.generate.caption_variants=true"]
    config = load_config(ROOT / "configs" / "tiny_generate.yaml", overrides)
    data = prepare_data(config, tiny_world[0])
    pool = data.caption_pool
    assert pool is not None and data.tokenizer is not None
    torch.manual_seed(0)
    model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
    model.tokenizer = data.tokenizer
    model.eval()  # no dropout: the two losses must be comparable
    rows = data.train_rows[:6]
    drawn = pool.sample(rows, torch.Generator().manual_seed(3))
    assert (drawn >= 0).all()
    texts = [pool.caption_ids(int(i)) for i in drawn]
    stored = [data.tensors.caption_ids[r][data.tensors.caption_mask[r]].tolist() for r in rows]
    assert texts != stored  # some draw differs from the stored caption
    ids, mask = data.tensors.caption_ids, data.tensors.caption_mask
    width = max(ids.shape[1], max(map(len, texts)))
    ids, mask = pad_ids([row[m].tolist() for row, m in zip(ids, mask, strict=True)], width, 0)
    ids[rows], mask[rows] = pad_ids(texts, width, data.tokenizer.pad_id)
    swapped = replace(data.tensors, caption_ids=ids, caption_mask=mask)

    def loss(task: str, tensors: SceneTensors, with_pool: bool) -> float:
        step = StepInputs(model, tensors, rows, torch.Generator().manual_seed(3))
        step.captions = pool if with_pool else None
        with torch.no_grad():
            return float(generation_loss(step, task))

    assert loss("caption", data.tensors, True) == pytest.approx(loss("caption", swapped, False))
    assert loss("caption", data.tensors, True) != pytest.approx(
        loss("caption", data.tensors, False)
    )
    assert loss("transcribe", data.tensors, True) == loss("transcribe", data.tensors, False)


def test_caption_grounding_adds_the_phrase_cell_loss_computed_row_by_row(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    """caption loss (grounding weight 0.5) = the same loss at weight 0 + 0.5 x the mean
    cross-entropy of the grounding head's column and row at every object-phrase token, computed
    here one row at a time with no padding."""
    from trimodal.generation.chat import CAPTION_PROMPT, render_ids
    from trimodal.losses.generative import generation_loss
    from trimodal.train.loop import prepare_data

    overrides = [
        "train.generate.caption_variants=true",
        "train.generate.grounding_weight=0.5",
        "model.decoder.grounding_bins=4",
        "model.decoder.conditioning=cross_attention",
    ]
    config = load_config(ROOT / "configs" / "tiny_generate.yaml", overrides)
    data = prepare_data(config, tiny_world[0])
    pool, tokenizer = data.caption_pool, data.tokenizer
    assert pool is not None
    torch.manual_seed(0)
    model = TriModalModel(config, tokenizer.vocab_size, data.vocabulary)
    model.tokenizer = tokenizer
    model.eval()
    head, decoder = model.caption_grounding, model.decoder
    assert head is not None and decoder is not None
    rows = data.train_rows[:5]

    def caption_loss(weight: float) -> float:
        model.config.train.generate.grounding_weight = weight
        step = StepInputs(model, data.tensors, rows, torch.Generator().manual_seed(3))
        step.captions = pool
        with torch.no_grad():
            return float(generation_loss(step, "caption"))

    with_grounding, without = caption_loss(0.5), caption_loss(0.0)
    drawn = pool.sample(rows, torch.Generator().manual_seed(3)).tolist()
    terms = []
    with torch.no_grad():
        images = to_float_images(data.tensors.images[rows])
        memory = model.decoder_prefix(("image", model.encode("image", images).sequence()))
        for i, index in enumerate(drawn):
            caption, cells = pool.caption_ids(index), pool.caption_cells(index)
            ids, _ = render_ids(
                tokenizer, [("user", CAPTION_PROMPT), ("assistant", caption)], False
            )
            states = decoder.features(torch.tensor([ids]), memory=memory.tokens[i : i + 1])[0]
            start = len(ids) - 1 - len(caption)  # the caption, then <eos>
            for t in range(len(caption)):
                if int(cells[t, 0]) == -100:
                    continue
                logits = head(states[start + t]).view(2, 4)
                terms += [-torch.log_softmax(logits[k], -1)[int(cells[t, k])] for k in (0, 1)]
    assert terms
    expected = without + 0.5 * float(torch.stack(terms).mean())
    assert with_grounding == pytest.approx(expected, rel=1e-4)


def test_caption_grounding_needs_its_head_and_the_variants(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    config = load_config(
        ROOT / "configs" / "tiny_generate.yaml",
        ["train.generate.grounding_weight=1.0", "model.decoder.grounding_bins=4"],
    )
    with pytest.raises(ValueError, match="caption_variants: true"):
        train(config, tiny_world[0], tmp_path / "run", progress=False)
