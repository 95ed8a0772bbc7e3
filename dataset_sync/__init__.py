"""Move declared slices of a Django database between environments, including deletions."""

from __future__ import annotations

from dataset_sync.dump import DumpSummary, dump, rules
from dataset_sync.errors import DatasetSyncError
from dataset_sync.load import check, load
from dataset_sync.load.guards import DeleteLimit
from dataset_sync.registry import Dataset, register, unregister
from dataset_sync.report import LoadReport, ModelCounts
from dataset_sync.specs import (
    Spec,
    specs_for_app_models,
    specs_for_derived_models,
    specs_for_models,
)

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DatasetSyncError",
    "DeleteLimit",
    "DumpSummary",
    "LoadReport",
    "ModelCounts",
    "Spec",
    "check",
    "dump",
    "load",
    "register",
    "rules",
    "specs_for_app_models",
    "specs_for_derived_models",
    "specs_for_models",
    "unregister",
]
