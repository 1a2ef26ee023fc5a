"""Networks by name: every architecture a member can have, one module each in this folder.

    from model.networks import build_network, get_architecture, list_architectures
    list_architectures()                       # ['crnn', 'musicnn_transfer', 'musicnn_zero_shot', ...]
    build_network("crnn", n_mels=128, n_classes=16, hparams={"hidden": 32})

Each module registers its architectures with `@register` (model/networks/base.py says what a
network must provide). The modules are imported on the first lookup, in name order; one that
fails to import is reported by `import_failures()` (and in the error for its names) and the
others still load. train.py's `--architecture`, the manifest, prediction, the exported CPU path
and tests/test_architectures.py all read this registry: adding a file here is the only edit.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
import warnings
from pathlib import Path

from torch import nn

from .base import KINDS, REGISTRY, Architecture, GenreNetwork, register

__all__ = [
    "KINDS",
    "Architecture",
    "GenreNetwork",
    "build_network",
    "get_architecture",
    "import_failures",
    "list_architectures",
    "register",
    "resolve_hparams",
]

_FAILURES: dict[str, str] = {}  # module file -> why it did not import
_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module == "base":
            continue
        try:
            importlib.import_module(f"{__name__}.{module}")
        except Exception as error:  # a fork's broken file must not take the others down
            where = traceback.extract_tb(error.__traceback__)[-1]
            line = f" (line {where.lineno} of {Path(where.filename).name})" if where else ""
            _FAILURES[f"model/networks/{module}.py"] = f"{type(error).__name__}: {error}{line}"
            warnings.warn(
                f"model/networks/{module}.py failed to import, its architectures are unavailable: "
                f"{_FAILURES[f'model/networks/{module}.py']}",
                stacklevel=3,
            )


def list_architectures() -> list[str]:
    """The registered names, sorted."""
    _load_all()
    return sorted(REGISTRY)


def import_failures() -> dict[str, str]:
    """{module file: error} for the modules of this folder that failed to import."""
    _load_all()
    return dict(_FAILURES)


def get_architecture(name: str) -> Architecture:
    """The registered architecture `name`; ValueError naming the registered ones otherwise."""
    _load_all()
    if name not in REGISTRY:
        failed = "".join(f"; {file} failed to import ({why})" for file, why in _FAILURES.items())
        raise ValueError(f"unknown architecture {name!r}; registered: {', '.join(sorted(REGISTRY))}{failed}")
    return REGISTRY[name]


def resolve_hparams(name: str, hparams: dict) -> dict:
    """The architecture's defaults updated with `hparams`; ValueError naming a parameter it does
    not take."""
    architecture = get_architecture(name)
    unknown = sorted(set(hparams) - set(architecture.parameters()))
    if unknown:
        raise ValueError(
            f"{name} takes no hyper-parameter {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(architecture.parameters()) or 'none'}"
        )
    return {**architecture.defaults, **hparams}


def build_network(name: str, n_mels: int, n_classes: int, hparams: dict) -> GenreNetwork:
    """Instantiate architecture `name`; unknown names and bad hyper-parameters raise ValueError."""
    resolved = {k: tuple(v) if isinstance(v, list) else v for k, v in resolve_hparams(name, hparams).items()}
    try:
        network = get_architecture(name).network(n_mels=n_mels, n_classes=n_classes, **resolved)
    except TypeError as error:
        raise ValueError(f"bad hyper-parameters for {name}: {error}") from None
    if get_architecture(name).trainable and not isinstance(network.output_layer(), nn.Linear):
        raise ValueError(
            f"{name}: output_layer() must return an nn.Linear, got {type(network.output_layer()).__name__}"
        )
    return network
