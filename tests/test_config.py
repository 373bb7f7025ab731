"""Recipes: YAML + dotted overrides into nested dataclasses, with path-naming errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trimodal.config import Config, ConfigError, config_from_json, load_config, to_dict


def test_defaults_yaml_and_overrides_compose(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  dim: 64\n  image: {kind: patch}\ntrain:\n  align: {epochs: 2}\n")
    config = load_config(
        recipe, ["model.dim=96", "train.multitask.tasks=[vqa_typed]", "train.align.lr=1e-3"]
    )
    assert config.model.dim == 96  # the override wins over the file
    assert config.model.image.kind == "patch" and config.model.image.patch_size == 8  # default kept
    assert config.train.align.epochs == 2.0 and isinstance(config.train.align.epochs, float)
    assert config.train.align.lr == pytest.approx(1e-3)
    assert config.train.multitask.tasks == ["vqa_typed"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  dimm: 3\n", "model: unknown key(s) ['dimm']"),
        ("model:\n  dim: wide\n", "model.dim: expected int, got str"),
        ("train:\n  align: {pairs: image-text}\n", "train.align.pairs: expected a list"),
        ("model:\n  text: 5\n", "model.text: expected a mapping"),
        ("[1, 2]\n", "must be a mapping"),
    ],
)
def test_bad_recipes_name_the_path(tmp_path: Path, text: str, message: str) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(recipe)
    assert message in str(info.value) and str(recipe) in str(info.value)


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match=r"a\.b=c"):
        load_config(None, ["model.dim"])
    with pytest.raises(ConfigError, match=r"model\.dim: expected int"):
        load_config(None, ["model.dim.x=1"])
    with pytest.raises(ConfigError, match=r"train\.align\.lr: expected float"):
        load_config(None, ["train.align.lr=fast"])


def test_saved_config_round_trips_exactly() -> None:
    config = load_config(
        None, ["model.fusion.options={query: audio, depth: 2}", "data.augment=true"]
    )
    text = json.dumps(to_dict(config))
    assert config_from_json(text) == config
    assert config_from_json(json.dumps(to_dict(Config()))) == Config()


def test_shipped_recipes_load() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for recipe in sorted(root.glob("*.yaml")):
        load_config(recipe)
    # The applications' recipes are their own kinds (configs/apps/).
    from trimodal.home.recipe import HomeRecipe

    home = HomeRecipe.load(root / "apps" / "home.yaml")
    assert "door:unlock" not in home.allow and home.policy().allow
