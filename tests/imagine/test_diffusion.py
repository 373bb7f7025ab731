"""The pixel-space diffusion method: layout, conditioning, targets, learning and seeding."""

from __future__ import annotations

import math

import torch

from trimodal.imagine.diffusion import (
    CaptionDenoiser,
    DiffusionConfig,
    diffusion_loss,
    sample_images,
    training_schedule,
)

TEXT_DIM = 5


def _denoiser(image_size: int = 16, patch: int = 4) -> CaptionDenoiser:
    torch.manual_seed(0)
    config = DiffusionConfig(
        dim=32, depth=2, heads=2, patch=patch, image_size=image_size, sample_steps=10
    )
    return CaptionDenoiser(TEXT_DIM, config)


def test_patches_go_back_to_their_place() -> None:
    denoiser = _denoiser()
    torch.nn.init.normal_(denoiser.head.weight)
    captured: list[torch.Tensor] = []
    denoiser.head.register_forward_hook(lambda _m, _i, out: captured.append(out))
    noisy = torch.randn(2, 3, 16, 16)
    states, mask = torch.randn(2, 3, TEXT_DIM), torch.ones(2, 3, dtype=torch.bool)
    out = denoiser(noisy, torch.tensor([5, 700]), states, mask)
    rows = captured[0]  # (B, G*G, p*p*3)
    patch, grid = 4, 4
    for b in range(2):
        for k in range(grid * grid):
            r, c = divmod(k, grid)
            for i in range(patch):
                for j in range(patch):
                    for channel in range(3):
                        expected = rows[b, k, (i * patch + j) * 3 + channel]
                        got = out[b, channel, r * patch + i, c * patch + j]
                        assert torch.equal(got, expected)


def test_masked_captions_do_not_matter_and_real_ones_do() -> None:
    denoiser = _denoiser()
    torch.nn.init.normal_(denoiser.head.weight)
    noisy, level = torch.randn(1, 3, 16, 16), torch.tensor([300])
    none = torch.zeros(1, 3, dtype=torch.bool)
    first = denoiser(noisy, level, torch.randn(1, 3, TEXT_DIM), none)
    other = denoiser(noisy, level, torch.randn(1, 3, TEXT_DIM), none)
    assert torch.allclose(first, other)
    real = torch.ones(1, 3, dtype=torch.bool)
    with_caption = denoiser(noisy, level, torch.randn(1, 3, TEXT_DIM), real)
    assert not torch.allclose(first, with_caption)


def test_training_target_is_the_velocity_of_the_cosine_schedule() -> None:
    config = DiffusionConfig(dim=32, depth=1, heads=2, patch=4, image_size=16)
    schedule = training_schedule(config)

    def alpha_bar(t: float) -> float:  # Nichol and Dhariwal 2021, eq. 17
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    t = 400
    cumulative = 1.0
    for step in range(t + 1):
        cumulative *= 1 - min(1 - alpha_bar(step + 1) / alpha_bar(step), 0.999)
    images, noise = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 3, 16, 16)
    levels = torch.tensor([t, t], dtype=torch.int32)
    velocity = schedule.get_velocity(images, noise, levels)  # type: ignore[arg-type]
    expected = math.sqrt(cumulative) * noise - math.sqrt(1 - cumulative) * images
    assert torch.allclose(velocity, expected, atol=1e-5)
    noisy = schedule.add_noise(images, noise, levels)  # type: ignore[arg-type]
    expected_noisy = math.sqrt(cumulative) * images + math.sqrt(1 - cumulative) * noise
    assert torch.allclose(noisy, expected_noisy, atol=1e-5)


def test_it_learns_two_captions_as_two_colours() -> None:
    denoiser = _denoiser(image_size=8, patch=4)
    schedule = training_schedule(denoiser.config)
    states = torch.randn(2, 2, TEXT_DIM)
    mask = torch.ones(2, 2, dtype=torch.bool)
    colours = torch.tensor([[0.8, -0.8, -0.8], [-0.8, -0.8, 0.8]])  # red, blue
    images = colours[:, :, None, None].expand(2, 3, 8, 8)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    keep = torch.zeros(32, dtype=torch.bool)
    for _ in range(300):
        rows = torch.arange(32) % 2
        loss = diffusion_loss(
            denoiser, schedule, images[rows], states[rows], mask[rows], keep, generator
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    denoiser.eval()
    drawn = sample_images(denoiser, states, mask, torch.Generator().manual_seed(1))
    means = drawn.mean(dim=(2, 3))  # (2, 3)
    assert torch.allclose(means, colours, atol=0.2), means


def test_sampling_is_seeded_and_guidance_one_is_plain() -> None:
    denoiser = _denoiser().eval()
    torch.nn.init.normal_(denoiser.head.weight, std=0.02)
    states, mask = torch.randn(2, 3, TEXT_DIM), torch.ones(2, 3, dtype=torch.bool)
    first = sample_images(denoiser, states, mask, torch.Generator().manual_seed(3))
    again = sample_images(denoiser, states, mask, torch.Generator().manual_seed(3), 1.0)
    other = sample_images(denoiser, states, mask, torch.Generator().manual_seed(4))
    assert first.shape == (2, 3, 16, 16)
    assert torch.equal(first, again) and not torch.equal(first, other)
    guided = sample_images(denoiser, states, mask, torch.Generator().manual_seed(3), 3.0)
    assert not torch.allclose(guided, first)
    assert float(guided.abs().max()) <= 1.0


def test_sample_prediction_learns_the_clean_image() -> None:
    class Oracle(torch.nn.Module):
        """Predicts the clean images it was built with, whatever it sees."""

        def __init__(self, clean: torch.Tensor, config: DiffusionConfig):
            super().__init__()
            self.clean, self.config = clean, config

        def forward(self, *_: torch.Tensor) -> torch.Tensor:
            return self.clean

    config = DiffusionConfig(dim=32, depth=1, heads=2, patch=4, image_size=16)
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    states, mask = torch.randn(3, 2, TEXT_DIM), torch.ones(3, 2, dtype=torch.bool)
    keep = torch.zeros(3, dtype=torch.bool)
    schedule, generator = training_schedule(config), torch.Generator().manual_seed(0)
    oracle = Oracle(images, config)
    loss = diffusion_loss(oracle, schedule, images, states, mask, keep, generator)  # type: ignore[arg-type]
    assert float(loss) == 0.0
    wrong = diffusion_loss(Oracle(-images, config), schedule, images, states, mask, keep, generator)  # type: ignore[arg-type]
    assert math.isclose(float(wrong), float(((2 * images) ** 2).mean()), rel_tol=1e-6)
