"""Finding files inside installed packages without importing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimodal.towers.installed import installed_file


def test_finds_a_file_and_a_folder_of_an_installed_package() -> None:
    found = installed_file("trimodal", "towers/real_photos.json", "photos", "reinstall trimodal")
    assert found == Path(__file__).resolve().parents[2] / "src/trimodal/towers/real_photos.json"
    assert installed_file("trimodal", "towers", "towers", "hint").is_dir()


def test_missing_package_or_path_says_what_and_how() -> None:
    with pytest.raises(FileNotFoundError, match=r"^Weights X is not installed: pip install x$"):
        installed_file("no_such_package_here", "model.bin", "Weights X", "pip install x")
    with pytest.raises(FileNotFoundError, match="photos is not installed"):
        installed_file("trimodal", "towers/absent.json", "photos", "hint")
