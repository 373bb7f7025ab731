"""Building a world on disk: determinism, caching, splits, answers, audio, summary."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile

from tests.conftest import TINY_WORLD
from tests.world import reference
from trimodal.data.manifest import load_manifest
from trimodal.world.generate import WorldConfig, WorldSummary, build_world, format_summary
from trimodal.world.language import QUESTION_FAMILIES
from trimodal.world.scene import HOLDOUT_PAIRS


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "summary.json"  # the summary records timings
    }


def _rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    config = WorldConfig(scenes=12, seed=9, noise_snr=20.0)
    build_world(tmp_path / "a", config, workers=2)
    build_world(tmp_path / "b", config, workers=1)  # worker count must not matter
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = build_world(tmp_path / "c", WorldConfig(scenes=12, seed=10), workers=1)
    assert other.config["seed"] == 10
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_rerun_reuses_the_cache_and_new_arguments_rebuild(tmp_path: Path) -> None:
    config = WorldConfig(scenes=6, seed=1)
    first = build_world(tmp_path, config, workers=1)
    assert not first.cached
    stamp = (tmp_path / "manifest.jsonl").stat().st_mtime_ns
    again = build_world(tmp_path, config, workers=1)
    assert again.cached and (tmp_path / "manifest.jsonl").stat().st_mtime_ns == stamp
    smaller = build_world(tmp_path, WorldConfig(scenes=4, seed=1), workers=1)
    assert not smaller.cached
    assert len(list((tmp_path / "images").iterdir())) == 4  # no stale files from the old world


def test_manifest_is_valid_and_splits_are_disjoint(tiny_world: tuple[Path, WorldSummary]) -> None:
    root, summary = tiny_world
    manifest = load_manifest(root / "manifest.jsonl")
    assert len(manifest.samples) == TINY_WORLD.scenes and not manifest.skipped
    ids_by_split = {
        s: {x.id for x in manifest.split(s)} for s in ("train", "val", "test", "holdout")
    }
    assert sum(len(v) for v in ids_by_split.values()) == TINY_WORLD.scenes
    assert summary.scenes_per_split == {k: len(v) for k, v in ids_by_split.items()}
    images = [sample.image for sample in manifest.samples]
    assert len(set(images)) == len(images)


def test_holdout_pairs_never_appear_outside_the_holdout(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    root, _ = tiny_world
    for row in _rows(root):
        pairs = {(o["color"], o["shape"]) for o in row["scene"]["objects"]}
        named = {(c, s) for c, s in HOLDOUT_PAIRS if f"{c} {s}" in row["text"]}
        named |= {
            (c, s)
            for q in row["questions"]
            for c, s in HOLDOUT_PAIRS
            if f"{c} {s}" in q["question"]
        }
        if row["split"] == "holdout":
            assert pairs & set(HOLDOUT_PAIRS)
        else:
            assert not pairs & set(HOLDOUT_PAIRS) and not named


def test_every_answer_matches_the_scene_graph(tiny_world: tuple[Path, WorldSummary]) -> None:
    root, _ = tiny_world
    for row in _rows(root):
        objects = row["scene"]["objects"]
        assert len(row["questions"]) >= 3
        families = [q["family"] for q in row["questions"]]
        assert len(set(families)) == len(families)
        for question in row["questions"]:
            assert reference.answer(question["question"], objects) == question["answer"]
            assert len(question["answer"].split()) == 1
        phrases, _ = reference.caption_facts(row["text"])
        assert Counter(phrases) == Counter(
            f"{o['size']} {o['color']} {o['shape']}" for o in objects
        )


def test_speech_files_are_16khz_mono_with_sane_durations(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    root, summary = tiny_world
    total = 0.0
    for row in _rows(root):
        spoken = [q for q in row["questions"] if "spoken_question" in q]
        assert len(spoken) == 1
        for path, words in (
            (row["audio"], row["text"]),
            (spoken[0]["spoken_question"], spoken[0]["question"]),
        ):
            info = soundfile.info(str(root / path))
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            seconds = info.frames / info.samplerate
            # 130-200 words a minute: between ~0.15 and ~0.7 s a word, trimmed of silence.
            assert 0.12 * len(words.split()) < seconds < 0.8 * len(words.split()) + 0.5
            total += seconds
        voices = row["meta"]["caption_voice"], row["meta"]["question_voice"]
        for voice in voices:
            assert 130 <= voice["rate"] <= 200 and 30 <= voice["pitch"] <= 70
    assert abs(total - summary.audio_seconds["total"]) < 1.0


def test_summary_reports_counts_balance_overlap_and_timings(
    tiny_world: tuple[Path, WorldSummary],
) -> None:
    root, summary = tiny_world
    rows = _rows(root)
    per_family = Counter(q["family"] for row in rows for q in row["questions"])
    for family in QUESTION_FAMILIES:
        assert sum(summary.questions_per_family[family].values()) == per_family[family]
        counts = summary.answer_balance[family]["counts"]
        assert sum(counts.values()) == per_family[family]
    train = {row["text"] for row in rows if row["split"] == "train"}
    test = [row["text"] for row in rows if row["split"] == "test"]
    assert summary.test_captions_in_train["verbatim_in_train"] == sum(t in train for t in test)
    assert summary.timings["total_wall_s"] > 0 and summary.size_on_disk_bytes > 0
    text = format_summary(summary)
    for word in ("train", "holdout", "balance", "count", "relation", "compare", "timings", "MB"):
        assert word in text


def test_a_split_world_holds_that_splits_scenes_and_styles_keep_scenes_and_answers(
    tmp_path: Path,
) -> None:
    from trimodal.world.channel import SpeechStyle
    from trimodal.world.generate import plan_world
    from trimodal.world.render import RenderStyle

    full = {job.scene.index: job for job in plan_world(WorldConfig(scenes=80, seed=4))}
    control = WorldConfig(scenes=5, seed=4, split="test")
    jobs = plan_world(control)
    assert [job.scene.split for job in jobs] == ["test"] * 5
    for job in jobs:
        assert job.scene == full[job.scene.index].scene
    styled = plan_world(
        WorldConfig(
            scenes=5,
            seed=4,
            split="test",
            phrasing="heldout",
            speech=SpeechStyle(noises=("babble",)),
            render=RenderStyle(turn=(10.0, 40.0)),
        )
    )
    for before, after in zip(jobs, styled, strict=True):
        assert before.scene == after.scene
        assert [q.answer for q in before.questions] == [q.answer for q in after.questions]
        assert [q.question for q in before.questions] != [q.question for q in after.questions]
        assert before.caption != after.caption and len(after.talkers) == 4
    recorded = control.recorded()
    assert recorded["split"] == "test" and "phrasing" not in recorded and "render" not in recorded
    assert "split" not in WorldConfig().recorded()
    build_world(tmp_path, control, workers=1)
    assert build_world(tmp_path, control, workers=1).cached


def test_a_failed_audio_write_names_the_file_and_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import soundfile

    from trimodal.world import generate

    def full_disk(*_: object, **__: object) -> None:
        raise soundfile.LibsndfileError(2, "")  # SF_ERR_SYSTEM: what a full disk gives

    monkeypatch.setattr(generate.soundfile, "write", full_disk)
    with pytest.raises(
        OSError, match=r"cannot write .*a\.wav: System error\.? \(\d+\.\d MB free there\)"
    ):
        generate.write_wav(tmp_path / "a.wav", np.zeros(16, dtype=np.float32))


def test_world_into_an_unwritable_place_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trimodal.cli.main import main

    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    assert main(["world", "--out", str(blocker / "world"), "--scenes", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trimodal world: error:") and "file.txt" in err and "\n" not in err
