"""The judges: Frechet distance against its closed form, retrieval by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trimodal.imagine.evaluate import frechet_distance, retrieval_r1


def test_frechet_distance_of_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0])
    # Same covariance: the distance is |mu_a - mu_b|^2 = 5.
    assert frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-6)
    b = rng.normal(0, 2, (20000, 3))
    # N(0, I) vs N(0, 4I): Tr(I + 4I - 2 * 2I) = 3 per the formula.
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.05)


def test_retrieval_against_real_images_by_hand() -> None:
    table = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.1], [0.1, 1.0], [0.7, 0.7]]), dim=-1
    ).numpy()
    real = table[[0, 1, 4]]
    captions = ["red", "blue", "green"]
    # Query 2 is nearest real 0 ("red": a hit for caption 0), query 3 nearest real 1 (hit),
    # query 0 for caption "green" lands on real 0 ("red"): a miss.
    queries = table[[2, 3, 0]]
    r1 = retrieval_r1(queries, real, captions)
    assert r1 == pytest.approx(2 / 3)
