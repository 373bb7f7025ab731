"""The chat template: ids and training targets, hand-checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimodal.data.tokenizer import TextTokenizer, train_tokenizer
from trimodal.generation.chat import (
    CAPTION_PROMPT,
    SPOKEN_PROMPT,
    TRANSCRIBE_PROMPT,
    Turn,
    render_ids,
    text_turns,
)


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    texts = ["user: what is left of the star? assistant: a small red circle", "and its size?"]
    return train_tokenizer(texts * 50, vocab_size=320)


def test_render_ids_marks_only_replies(tokenizer: TextTokenizer) -> None:
    turns = [("user", "what is left of the star?"), ("assistant", "a small red circle")]
    turns += [("user", "and its size?"), ("assistant", "small")]
    ids, targets = render_ids(tokenizer, turns, open_reply=False)
    user, assistant = tokenizer.encode("user:"), tokenizer.encode("assistant:")
    expected = [tokenizer.bos_id, *user, *tokenizer.encode("what is left of the star?"), *assistant]
    first_reply = [*tokenizer.encode("a small red circle"), tokenizer.eos_id]
    expected += first_reply
    expected += [*user, *tokenizer.encode("and its size?"), *assistant]
    expected += [*tokenizer.encode("small"), tokenizer.eos_id]
    assert ids == expected
    replies = [i for i, t in zip(ids, targets, strict=True) if t]
    assert replies == [*first_reply, *tokenizer.encode("small"), tokenizer.eos_id]
    # pieces are tokenized separately, so no spaces are inserted between them
    assert tokenizer.decode(ids).startswith("user:what is left of the star?assistant:a small")


def test_ids_and_strings_render_the_same(tokenizer: TextTokenizer) -> None:
    as_text = render_ids(tokenizer, [("user", "and its size?")], open_reply=True)
    as_ids = render_ids(tokenizer, [("user", tokenizer.encode("and its size?"))], open_reply=True)
    assert as_text == as_ids
    assert not any(as_text[1])


def test_conversation_shape_errors(tokenizer: TextTokenizer) -> None:
    with pytest.raises(ValueError, match="end with a user turn"):
        render_ids(tokenizer, [("user", "q"), ("assistant", "a")], open_reply=True)
    with pytest.raises(ValueError, match="end with an assistant turn"):
        render_ids(tokenizer, [("user", "q")], open_reply=False)
    with pytest.raises(ValueError, match="role"):
        Turn("system", "hi")
    with pytest.raises(ValueError, match="only user turns"):
        Turn("assistant", "hi", image="x.png")


def test_media_only_turns_get_task_prompts(tmp_path: Path) -> None:
    image, audio = tmp_path / "x.png", tmp_path / "q.wav"
    assert text_turns([Turn("user", image=image)]) == [("user", CAPTION_PROMPT)]
    assert text_turns([Turn("user", audio=audio)]) == [("user", TRANSCRIBE_PROMPT)]
    assert text_turns([Turn("user", image=image, audio=audio)]) == [("user", SPOKEN_PROMPT)]
    later = text_turns(
        [Turn("user", image=image), Turn("assistant", "a red star"), Turn("user", audio=audio)]
    )
    assert later[-1] == ("user", SPOKEN_PROMPT)
    with pytest.raises(ValueError, match="needs text"):
        text_turns([Turn("user")])
