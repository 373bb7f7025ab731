"""What a text-only LLM is told about a conversation's photos and recordings.

SmolLM2 reads text only, so ``trimodal chat --llm smollm2`` turns each attached file into words
with the pretrained towers before the model sees the turn: a photo into EfficientNet-Lite0's
most probable ImageNet classes (labels, not pixels: the reply describes what the classifier
named), a recording into Whisper's transcript. The towers load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trimodal.generation.chat import Turn


@dataclass
class RealSenses:
    """Turns a user turn's ``image`` / ``audio`` into text (``top`` ImageNet classes; Whisper
    ``whisper``)."""

    top: int = 3
    whisper: str = "tiny.en"
    _towers: dict[str, Any] = field(default_factory=dict, repr=False)

    def __call__(self, turn: Turn) -> str:
        """The turn's text, after a bracketed line per attached photo or recording."""
        lines = []
        if turn.image is not None:
            lines.append(f"[A photo is attached. It most likely shows: {self.labels(turn.image)}.]")
        if turn.audio is not None:
            lines.append(f'[Attached recording. It says: "{self.hear(turn.audio)}"]')
        return "\n".join([*lines, turn.text]).strip()

    def labels(self, image: Any) -> str:
        """``"name, name or name"``: the ``top`` ImageNet classes of the photo at ``image``, most
        probable first (repeated names, which ImageNet has, are said once)."""
        from trimodal.towers.efficientnet import (
            EfficientNetLite0,
            imagenet_class_names,
            load_efficientnet_lite0,
        )

        if "image" not in self._towers:
            self._towers["image"] = (load_efficientnet_lite0(), imagenet_class_names())
        network, names = self._towers["image"]
        with torch.no_grad():
            probabilities = network(EfficientNetLite0.preprocess(image)[None]).softmax(-1)[0]
        ranked = probabilities.argsort(descending=True).tolist()
        chosen = list(dict.fromkeys(names[i] for i in ranked[: 2 * self.top]))[: self.top]
        return ", ".join(chosen[:-1]) + (" or " if len(chosen) > 1 else "") + chosen[-1]

    def hear(self, audio: Any) -> str:
        """Whisper's transcript of the recording at ``audio`` (a path, or a 16 kHz waveform)."""
        from trimodal.towers.whisper import WhisperTower

        if "audio" not in self._towers:
            self._towers["audio"] = WhisperTower.load(self.whisper)
        if isinstance(audio, torch.Tensor):  # a waveform at 16 kHz (what the server decodes)
            audio = audio.numpy()
        return str(self._towers["audio"].transcribe(audio))
