"""Where the weight packages put their files, found without importing them (some packages'
``__init__`` pulls a runtime we do not use)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def installed_file(package: str, relative: str, what: str, hint: str) -> Path:
    """``relative`` (a file or folder) inside the installed ``package``.

    Raises:
        FileNotFoundError: ``"{what} is not installed: {hint}"`` when the package or the path
            inside it is absent.
    """
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{what} is not installed: {hint}")
