"""Converters from public dataset formats into trimodal manifests.

- COCO captions JSON (``images`` + ``annotations``): one row per image with all its captions.
- VQA v2 questions JSON + annotations JSON: one row per image with all its questions and every
  annotator answer.
- Karpathy split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``): one row per image of
  the chosen retrieval split(s) with all its captions.
- Audio-caption CSV in the AudioCaps style (``youtube_id``/``audiocap_id`` + ``caption``) or the
  Clotho style (``file_name`` + ``caption_1`` ... ``caption_5``): one row per (clip, caption).
- MSR-VTT annotation JSON (``videos`` + ``sentences``): one row per (video, caption).

Media paths are written relative to the output manifest's folder. A malformed input raises a
:class:`ConversionError` naming the file and the record (JSON path or CSV line and column). With
``on_error="skip"`` a bad record is left out instead and listed in
:attr:`ConversionResult.skipped`; problems with a file as a whole always raise.
"""

from trimodal.data.converters.audio import audio_captions_csv_to_manifest
from trimodal.data.converters.coco import coco_captions_to_manifest
from trimodal.data.converters.common import ConversionError, ConversionResult
from trimodal.data.converters.karpathy import KARPATHY_SPLITS, karpathy_to_manifest
from trimodal.data.converters.video import MSRVTT_SPLITS, msrvtt_to_manifest
from trimodal.data.converters.vqa import COCO_IMAGE_PATTERN, vqa_to_manifest

__all__ = [
    "COCO_IMAGE_PATTERN",
    "KARPATHY_SPLITS",
    "MSRVTT_SPLITS",
    "ConversionError",
    "ConversionResult",
    "audio_captions_csv_to_manifest",
    "coco_captions_to_manifest",
    "karpathy_to_manifest",
    "msrvtt_to_manifest",
    "vqa_to_manifest",
]
