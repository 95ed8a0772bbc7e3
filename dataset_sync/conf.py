"""Every DATASET_SYNC_* setting, read here with its default."""

from __future__ import annotations

import datetime as dt
import math
import os
from typing import Any

from django.conf import settings

from dataset_sync.errors import InvalidSpecError


def datasets_setting() -> str | None:
    """DATASET_SYNC_DATASETS: dotted path to a feincms3-data style ``datasets()`` function."""
    value = getattr(settings, "DATASET_SYNC_DATASETS", None)
    return value if value is None else str(value)


def batch_size() -> int:
    """DATASET_SYNC_BATCH_SIZE: rows read, compared and written per round trip."""
    return int(getattr(settings, "DATASET_SYNC_BATCH_SIZE", 1000))


def identities_setting() -> dict[Any, Any]:
    """DATASET_SYNC_IDENTITIES: per model (label or class), how its rows are recognised on
    another database: ``"natural_key"``, or a field name or list of field names."""
    value = getattr(settings, "DATASET_SYNC_IDENTITIES", None) or {}
    if not isinstance(value, dict):
        raise InvalidSpecError(
            f"DATASET_SYNC_IDENTITIES must be a dict of model labels to identities, not {value!r}."
        )
    return value


def signing_key() -> str | None:
    """DATASET_SYNC_SIGNING_KEY, from the settings or else the environment.

    When set, dumps are signed with it and the loader refuses dumps without a valid signature.
    """
    value = getattr(settings, "DATASET_SYNC_SIGNING_KEY", None) or os.environ.get(
        "DATASET_SYNC_SIGNING_KEY"
    )
    return str(value) if value else None


def max_age() -> float | None:
    """DATASET_SYNC_MAX_AGE: seconds (or a timedelta); the loader refuses dumps made longer ago.

    None, the default, accepts dumps of any age. Only a signed dump's time is more than its word.
    """
    value = getattr(settings, "DATASET_SYNC_MAX_AGE", None)
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    raise InvalidSpecError(
        f"DATASET_SYNC_MAX_AGE must be a number of seconds or a timedelta, not {value!r}."
    )


def rules_setting() -> Any:
    """DATASET_SYNC_RULES: the project's data rules, by field name, model field or field class.

    Returned as set; ``dataset_sync.dump.rules`` checks its shape and reports what is wrong.
    """
    return getattr(settings, "DATASET_SYNC_RULES", {})


def rules_strict() -> bool:
    """DATASET_SYNC_RULES_STRICT: personal fields without a data rule are errors, not warnings.

    ``manage.py check`` reports them as errors, and a dump of them is refused.
    """
    return bool(getattr(settings, "DATASET_SYNC_RULES_STRICT", False))


def required_rules() -> bool | frozenset[str]:
    """DATASET_SYNC_REQUIRE_RULES: True, or the names of the datasets whose dumps this database
    loads only when they were written with the data rules it declares for them."""
    value = getattr(settings, "DATASET_SYNC_REQUIRE_RULES", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(name, str) for name in value
    ):
        return frozenset(value)
    raise InvalidSpecError(
        f"DATASET_SYNC_REQUIRE_RULES must be True, False or a list of dataset names, not {value!r}."
    )


def rules_secret() -> str:
    """DATASET_SYNC_RULES_SECRET, from the settings or else the environment; else SECRET_KEY.

    The key of the ``hashed`` rule. Only the dumping side needs it; it is not the signing
    key, which the loading side holds too.
    """
    value = getattr(settings, "DATASET_SYNC_RULES_SECRET", None) or os.environ.get(
        "DATASET_SYNC_RULES_SECRET"
    )
    return str(value) if value else str(settings.SECRET_KEY)


def renames_setting() -> dict[str, dict[str, str]]:
    """DATASET_SYNC_RENAMES: fields renamed on this database that dumps may still name by
    their old names, per model label: ``{"shop.part": {"label": "title"}}`` (old to new).

    A renamed model's fields are declared under its new label. InvalidSpecError when the
    setting has another shape; ``manage.py check`` reports it first (dataset_sync.E009).
    """
    value = getattr(settings, "DATASET_SYNC_RENAMES", None) or {}
    if not (
        isinstance(value, dict)
        and all(
            isinstance(label, str)
            and isinstance(fields, dict)
            and all(isinstance(name, str) for pair in fields.items() for name in pair)
            for label, fields in value.items()
        )
    ):
        raise InvalidSpecError(
            "DATASET_SYNC_RENAMES must map model labels to dicts of old field names to new"
            f" ones, not {value!r}."
        )
    return {label.lower(): fields for label, fields in value.items()}


def model_renames_setting() -> dict[str, str]:
    """DATASET_SYNC_MODEL_RENAMES: models renamed on this database that dumps may still name
    by their old labels: ``{"shop.part": "shop.component"}`` (old label to new).

    InvalidSpecError when the setting has another shape; ``manage.py check`` reports it first
    (dataset_sync.E009).
    """
    value = getattr(settings, "DATASET_SYNC_MODEL_RENAMES", None) or {}
    if not (
        isinstance(value, dict)
        and all(
            isinstance(label, str) and label.count(".") == 1
            for pair in value.items()
            for label in pair
        )
    ):
        raise InvalidSpecError(
            "DATASET_SYNC_MODEL_RENAMES must map old model labels to new ones, like"
            f" {{'shop.part': 'shop.component'}}, not {value!r}."
        )
    return {old.lower(): new.lower() for old, new in value.items()}
