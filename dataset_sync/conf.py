"""Every DATASET_SYNC_* setting, read here with its default."""

from __future__ import annotations

import os

from django.conf import settings


def datasets_setting() -> str | None:
    """DATASET_SYNC_DATASETS: dotted path to a feincms3-data style ``datasets()`` function."""
    value = getattr(settings, "DATASET_SYNC_DATASETS", None)
    return value if value is None else str(value)


def batch_size() -> int:
    """DATASET_SYNC_BATCH_SIZE: rows read, compared and written per round trip."""
    return int(getattr(settings, "DATASET_SYNC_BATCH_SIZE", 1000))


def signing_key() -> str | None:
    """DATASET_SYNC_SIGNING_KEY, from the settings or else the environment.

    When set, dumps are signed with it and the loader refuses dumps without a valid signature.
    """
    value = getattr(settings, "DATASET_SYNC_SIGNING_KEY", None) or os.environ.get(
        "DATASET_SYNC_SIGNING_KEY"
    )
    return str(value) if value else None
