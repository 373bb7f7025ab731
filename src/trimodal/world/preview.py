"""A contact sheet of scenes with their captions and one question each (for README and docs)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def preview_grid(
    world: str | os.PathLike[str], out: str | os.PathLike[str], count: int = 6, scale: int = 3
) -> Path:
    """Draw the first ``count`` scenes of ``world``, enlarged ``scale`` times, with their text.

    Returns:
        the path of the written PNG.
    """
    root = Path(world)
    with open(root / "manifest.jsonl", encoding="utf-8") as stream:
        rows = [json.loads(line) for _, line in zip(range(count), stream, strict=False)]
    font = ImageFont.load_default()
    tile = 64 * scale
    text_height = 78
    sheet = Image.new("RGB", (len(rows) * (tile + 12) + 12, tile + text_height + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for column, row in enumerate(rows):
        image = (
            Image.open(root / row["image"])
            .convert("RGB")
            .resize((tile, tile), Image.Resampling.NEAREST)
        )
        left = 12 + column * (tile + 12)
        sheet.paste(image, (left, 12))
        question = row["questions"][0]
        text = f"{row['text']}\nQ: {question['question']}\nA: {question['answer']}"
        wrapped = "\n".join(textwrap.fill(part, width=30) for part in text.split("\n"))
        draw.multiline_text((left, tile + 18), wrapped, fill="black", font=font, spacing=2)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target)
    return target
