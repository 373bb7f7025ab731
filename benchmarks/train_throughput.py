"""Image-text contrastive training step: trimodal vs transformers' CLIPModel, in one run.

Both models are built with the same widths, depths, heads, MLP width, patch size, image size,
text length, vocabulary and batch; both take a full step (forward, symmetric InfoNCE, backward,
AdamW). Runs are interleaved (A B A B ...) after a warm-up; the median of the repeats is
reported with min and max. Also prints our step's FLOPs (counted by torch's FlopCounterMode)
per second as a fraction of a measured fp32 matmul peak on the same threads.

Two text batches are raced, both padded to ``--text-length`` and given to both models with the
same attention mask:

- ``full``: every caption fills the whole length (like-for-like work; the headline ratio);
- ``varied``: caption lengths uniform between a quarter of it and all of it, as real captions
  vary. CLIPModel computes every padded position; trimodal's training path
  (``encode_padded_text``) encodes rows in groups of similar length (``model.length_groups``).

    python benchmarks/train_throughput.py [--batch 128] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from trimodal.config import Config, load_config
from trimodal.losses.contrastive import info_nce
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel


def our_model(config: Config, vocab: int) -> TriModalModel:
    """trimodal with a patch-ViT image tower (CLIP's tokenization) for a like-for-like race."""
    return TriModalModel(config, vocab, Vocabulary(["yes", "no"], ["a"]))


def clip_model(config: Config, vocab: int) -> torch.nn.Module:
    """transformers' CLIPModel with the same sizes (sdpa attention, as ours)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    m = config.model
    hidden = int(m.dim * m.mlp_ratio)
    text = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=m.dim,
        intermediate_size=hidden,
        num_hidden_layers=m.text.depth,
        num_attention_heads=m.text.heads,
        max_position_embeddings=m.text.max_length,
        hidden_act="gelu",
    )
    vision = CLIPVisionConfig(
        hidden_size=m.dim,
        intermediate_size=hidden,
        num_hidden_layers=m.image.depth,
        num_attention_heads=m.image.heads,
        image_size=config.data.image_size,
        patch_size=m.image.patch_size,
        hidden_act="gelu",
    )
    clip_config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=m.embed_dim
    )
    return CLIPModel._from_config(clip_config, attn_implementation="sdpa")


def timed_steps(step: Callable[[], None], count: int) -> float:
    """Seconds per step over ``count`` steps."""
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def matmul_peak(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """Measured fp32 matmul FLOP/s on this machine's threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    """Build both, race them, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--text-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = load_config(
        None,
        [
            "model.image.kind=patch",
            "model.image.patch_size=8",
            "model.image.depth=2",
            "model.text.depth=2",
            "model.mlp_ratio=2.0",
            "model.dim=128",
            "model.embed_dim=128",
        ],
    )
    vocab, batch = 600, args.batch
    ours, clip = our_model(config, vocab), clip_model(config, vocab)
    ours_params = sum(p.numel() for p in ours.encoders["image"].parameters()) + sum(
        p.numel() for p in ours.encoders["text"].parameters()
    )
    print(
        f"config: batch {batch}, image {config.data.image_size}px patch {config.model.image.patch_size}, "
        f"text length {args.text_length}, width {config.model.dim}, depth image {config.model.image.depth} / "
        f"text {config.model.text.depth}, MLP {int(config.model.dim * config.model.mlp_ratio)}, "
        f"threads {args.threads}, {args.repeats} repeats x {args.steps} steps (interleaved)"
    )
    print(
        f"parameters: trimodal towers {ours_params:,}; CLIPModel {sum(p.numel() for p in clip.parameters()):,}"
    )
    for lengths in ("full", "varied"):
        race(args, ours, clip, vocab, lengths)


def race(
    args: argparse.Namespace, ours: TriModalModel, clip: torch.nn.Module, vocab: int, lengths: str
) -> None:
    """Time both models' steps on one batch of images and captions; print the comparison."""
    batch, size = args.batch, ours.config.data.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator)
    ids = torch.randint(4, vocab, (batch, args.text_length), generator=generator)
    low = args.text_length // 4 if lengths == "varied" else args.text_length
    length = torch.randint(low, args.text_length + 1, (batch,), generator=generator)
    length[0] = args.text_length  # the batch is as wide as --text-length
    mask = torch.arange(args.text_length)[None, :] < length[:, None]
    ids = ids.masked_fill(~mask, 0)
    ours_optimizer = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def our_step() -> None:
        image = ours.encode("image", images).pooled
        text = ours.encode_padded_text(ids, mask).pooled
        loss = info_nce(image, text, ours.temperature())
        ours_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ours_optimizer.step()

    clip_optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-4)
    attention_mask = mask.long()

    def clip_step() -> None:
        output = clip(
            input_ids=ids, pixel_values=images, attention_mask=attention_mask, return_loss=True
        )
        clip_optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        clip_optimizer.step()

    for _ in range(2):  # warm-up
        our_step()
        clip_step()
    ours_times, clip_times = [], []
    for _ in range(args.repeats):
        ours_times.append(timed_steps(our_step, args.steps))
        clip_times.append(timed_steps(clip_step, args.steps))
    with FlopCounterMode(display=False) as counter:
        our_step()
    flops = counter.get_total_flops()
    peak = matmul_peak(args.threads)
    ours_rate = [batch / t for t in ours_times]
    clip_rate = [batch / t for t in clip_times]
    median_ours, median_clip = statistics.median(ours_rate), statistics.median(clip_rate)
    print(
        f"captions {lengths} (mean length {float(length.float().mean()):.1f} of {args.text_length}):"
    )
    print(
        f"  trimodal  samples/s: median {median_ours:7.1f}  (min {min(ours_rate):.1f}, max {max(ours_rate):.1f})"
    )
    print(
        f"  CLIPModel samples/s: median {median_clip:7.1f}  (min {min(clip_rate):.1f}, max {max(clip_rate):.1f})"
    )
    print(f"  ratio trimodal / CLIPModel: {median_ours / median_clip:.2f}x (target >= 1.3x)")
    achieved = flops * median_ours / batch
    print(
        f"  trimodal step: {flops / 1e9:.1f} GFLOP; {achieved / 1e9:.1f} GFLOP/s = "
        f"{achieved / peak:.0%} of measured fp32 matmul peak {peak / 1e9:.1f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
