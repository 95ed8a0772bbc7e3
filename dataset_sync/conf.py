"""Every DATASET_SYNC_* setting, read here with its default."""

from __future__ import annotations

from django.conf import settings


def datasets_setting() -> str | None:
    """DATASET_SYNC_DATASETS: dotted path to a feincms3-data style ``datasets()`` function."""
    value = getattr(settings, "DATASET_SYNC_DATASETS", None)
    return value if value is None else str(value)


def batch_size() -> int:
    """DATASET_SYNC_BATCH_SIZE: rows read, compared and written per round trip."""
    return int(getattr(settings, "DATASET_SYNC_BATCH_SIZE", 1000))
