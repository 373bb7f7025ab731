"""The caption-to-ids decoder: left padding, learning, seeded and cached sampling."""

from __future__ import annotations

import torch

from trimodal.imagine.prior import IMAGE_TOKENS, CaptionToImage, left_padded
from trimodal.modules.decoder import DecoderConfig


def test_left_padding_matches_a_naive_loop() -> None:
    states = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    padded, valid = left_padded(states, mask)
    expected = torch.zeros_like(states)
    for row in range(2):
        length = int(mask[row].sum())
        expected[row, 4 - length :] = states[row, :length]
    assert torch.equal(padded, expected)
    assert valid.tolist() == [[False, False, True, True], [True] * 4]


def _prior() -> CaptionToImage:
    torch.manual_seed(0)
    config = DecoderConfig(
        vocab_size=9,
        max_positions=3 + IMAGE_TOKENS + 1,
        dim=32,
        depth=1,
        heads=2,
        tie_embeddings=False,
    )
    return CaptionToImage(text_dim=5, codes=8, config=config)


def test_it_learns_a_caption_to_image_mapping_and_samples_it() -> None:
    prior = _prior()
    states = torch.randn(2, 3, 5)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    ids = torch.stack([torch.arange(IMAGE_TOKENS) % 8, (torch.arange(IMAGE_TOKENS) * 3) % 8])
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(200):
        loss = prior.loss(states, mask, ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.1
    prior.eval()
    greedy = prior.sample(states, mask, torch.Generator().manual_seed(0), temperature=0)
    assert torch.equal(greedy, ids)


def test_sampling_is_seeded_and_the_cache_agrees_with_full_passes() -> None:
    prior = _prior().eval()
    states, mask = torch.randn(1, 3, 5), torch.ones(1, 3, dtype=torch.bool)
    first = prior.sample(states, mask, torch.Generator().manual_seed(4))
    again = prior.sample(states, mask, torch.Generator().manual_seed(4))
    other = prior.sample(states, mask, torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and not torch.equal(first, other)
    greedy = prior.sample(states, mask, torch.Generator(), temperature=0)
    # Without the cache: each next id is the argmax of a full pass over everything before it.
    prefix, valid = prior.prefix(states, mask)
    ids = torch.full((1, 1), prior.start)
    with torch.no_grad():
        for step in range(8):
            attention = torch.cat([valid, torch.ones_like(ids, dtype=torch.bool)], dim=1)
            logits, _ = prior.decoder(ids, prefix, attention)
            chosen = logits[:, -1, : prior.codes].argmax(-1, keepdim=True)
            assert int(chosen) == int(greedy[0, step])
            ids = torch.cat([ids, chosen], dim=1)


def test_guidance_one_is_plain_sampling_and_guided_sampling_is_seeded() -> None:
    prior = _prior().eval()
    states, mask = torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    plain = prior.sample(states, mask, torch.Generator().manual_seed(1))
    same = prior.sample(states, mask, torch.Generator().manual_seed(1), guidance=1.0)
    assert torch.equal(plain, same)
    guided = prior.sample(states, mask, torch.Generator().manual_seed(1), guidance=3.0)
    again = prior.sample(states, mask, torch.Generator().manual_seed(1), guidance=3.0)
    assert torch.equal(guided, again) and guided.shape == (2, IMAGE_TOKENS)


def test_dropped_captions_read_only_the_null_prefix() -> None:
    prior = _prior()
    states, mask = torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    prefix, valid = prior.prefix(states, mask)
    dropped, dropped_valid = prior.unconditional(prefix, valid, torch.tensor([True, False]))
    assert dropped_valid.tolist() == [[False, False, True], [True, True, True]]
    assert torch.equal(dropped[0, -1], prior.null[0, 0]) and torch.equal(dropped[1], prefix[1])
    # A dropped row's loss does not depend on its caption.
    ids = torch.randint(0, 8, (2, IMAGE_TOKENS))
    drop = torch.tensor([True, True])
    first = prior.loss(states, mask, ids, drop)
    other = prior.loss(torch.randn(2, 3, 5), mask, ids, drop)
    assert torch.allclose(first, other)
