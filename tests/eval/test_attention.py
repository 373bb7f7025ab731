"""Grad-CAM against hand-computed relevance, and on a trained tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trimodal import Model
from trimodal.data.tensors import to_float_images
from trimodal.eval.attention import grad_cam_weights, question_grad_cam, save_overlay, upsample_grid


def test_grad_cam_weights_hand_computed() -> None:
    tokens = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    gradients = torch.tensor([[2.0, 0.0], [2.0, 4.0], [2.0, 0.0], [2.0, 0.0]])
    # channel weights = mean over tokens = (2, 1); raw cam = (2, 2, 3, -2) -> relu -> / 3
    cam = grad_cam_weights(tokens, gradients)
    assert torch.allclose(cam, torch.tensor([2 / 3, 2 / 3, 1.0, 0.0]))


def test_grad_cam_falls_back_to_gradient_times_input() -> None:
    tokens = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    gradients = torch.tensor([[-1.0, 0.0], [-1.0, -4.0]])
    # mean weights (-1, -2): raw cam (-1, 2)? -> token 1: 0*-1 + -1*-2 = 2 > 0: no fallback
    assert torch.allclose(grad_cam_weights(tokens, gradients), torch.tensor([0.0, 1.0]))
    negative = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    grads = torch.tensor([[-3.0, 0.0], [1.0, 0.0]])  # mean (-1, 0): cam all negative
    # gradient x input per token: (-3, 1) -> relu -> (0, 1)
    assert torch.allclose(grad_cam_weights(negative, grads), torch.tensor([0.0, 1.0]))
    assert torch.equal(grad_cam_weights(negative, torch.zeros(2, 2)), torch.zeros(2))


def test_upsample_grid() -> None:
    heat = upsample_grid(torch.tensor([0.0, 1.0, 0.0, 0.0]), 8)
    assert heat.shape == (8, 8)
    assert heat[:4, 4:].mean() > heat[4:, :4].mean()  # the top-right token is the hot one
    with pytest.raises(ValueError, match="square grid"):
        upsample_grid(torch.ones(3), 8)


def test_question_grad_cam_answers_like_the_model(tiny_run: Path, tmp_path: Path) -> None:
    model = Model.from_pretrained(tiny_run)
    network = model.network
    image = to_float_images(torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8))[0]
    ids = torch.tensor([model.tokenizer.encode("what color is the star?")])
    question = network.encode("text", ids, torch.ones_like(ids, dtype=torch.bool)).sequence()
    answer, heat = question_grad_cam(network, image, question, "text")
    with torch.no_grad():
        context = network.image_context(network.encode("image", image.unsqueeze(0)))
        expected = int(network.answer_logits({"image": context, "text": question}).argmax())
    assert answer == expected
    assert heat.shape == (64, 64) and float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0
    assert all(p.grad is None for p in network.parameters())
    pixels = (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()
    path = save_overlay(pixels, heat, tmp_path / "overlay.png", "q")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
