"""Move declared slices of a Django database between environments, including deletions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DatasetSyncError",
    "LoadReport",
    "Spec",
    "dump",
    "load",
    "register",
    "specs_for_app_models",
    "specs_for_derived_models",
    "specs_for_models",
]

if TYPE_CHECKING:
    from dataset_sync.dump import dump
    from dataset_sync.errors import DatasetSyncError
    from dataset_sync.load import LoadReport, load
    from dataset_sync.registry import Dataset, register
    from dataset_sync.specs import (
        Spec,
        specs_for_app_models,
        specs_for_derived_models,
        specs_for_models,
    )

_EXPORTS = {
    "Dataset": "dataset_sync.registry",
    "DatasetSyncError": "dataset_sync.errors",
    "LoadReport": "dataset_sync.load",
    "Spec": "dataset_sync.specs",
    "dump": "dataset_sync.dump",
    "load": "dataset_sync.load",
    "register": "dataset_sync.registry",
    "specs_for_app_models": "dataset_sync.specs",
    "specs_for_derived_models": "dataset_sync.specs",
    "specs_for_models": "dataset_sync.specs",
}


def __getattr__(name: str) -> Any:
    # Imported lazily: the package is imported from INSTALLED_APPS before models are ready.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dataset_sync' has no attribute {name!r}")
