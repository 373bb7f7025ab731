"""The image tokenizer: shapes, the codebook following the data, restarts of unused codes."""

from __future__ import annotations

import torch

from trimodal.imagine.tokenizer import ImageTokenizer, TokenizerConfig


def test_round_trip_shapes_and_nearest_code() -> None:
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(TokenizerConfig(codes=16, code_dim=8, width=8)).eval()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    ids = tokenizer.encode(images)
    assert ids.shape == (2, 8, 8) and int(ids.max()) < 16
    assert tokenizer.decode(ids).shape == (2, 3, 64, 64)
    vectors = torch.randn(5, 8)
    naive = torch.stack([((tokenizer.codebook - v) ** 2).sum(1).argmin() for v in vectors])
    assert torch.equal(tokenizer.nearest(vectors), naive)


def test_training_learns_two_flat_colours() -> None:
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(TokenizerConfig(codes=8, code_dim=8, width=8, decay=0.8))
    red = torch.tensor([0.8, -0.8, -0.8]).view(1, 3, 1, 1).expand(4, 3, 64, 64)
    blue = torch.tensor([-0.8, -0.8, 0.8]).view(1, 3, 1, 1).expand(4, 3, 64, 64)
    images = torch.cat([red, blue])
    optimizer = torch.optim.Adam(tokenizer.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss, _ = tokenizer(images)
        first = float(loss) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokenizer.eval()
    with torch.no_grad():
        rebuilt = tokenizer.decode(tokenizer.encode(images))
    assert float(((rebuilt - images) ** 2).mean()) < 0.05 < first
    assert not torch.equal(tokenizer.encode(red[:1]), tokenizer.encode(blue[:1]))


def test_unused_codes_restart_at_data() -> None:
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(TokenizerConfig(codes=4, code_dim=2, width=8, decay=0.5))
    tokenizer.cluster_size.fill_(1e-3)  # every code looks unused
    old_sum = tokenizer.cluster_sum[0].clone()
    vectors = torch.full((6, 2), 7.0)
    tokenizer._update_codebook(vectors, torch.zeros(6, dtype=torch.long))
    # Code 0 took all six vectors: its moving averages by hand (decay 0.5).
    expected = (0.5 * old_sum + 0.5 * 6 * 7.0) / (0.5 * 1e-3 + 0.5 * 6)
    assert torch.allclose(tokenizer.codebook[0], expected)
    # The others stayed unused and restart at data vectors.
    assert torch.equal(tokenizer.codebook[1:], torch.full((3, 2), 7.0))
