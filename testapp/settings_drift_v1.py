"""Settings for a process running the drift app in its older state (``drift_v1``).

The schema tests (tests/test_schema.py) run such processes against a database of their own,
migrated by drift_v1's migrations: DATASET_SYNC_DRIFT_DB names it (a file for SQLite, a
database on the server otherwise), and its test name is the same, so that
``create_test_db()`` makes and migrates exactly that database.
"""

from __future__ import annotations

import os

from testapp.settings import (
    DATASET_SYNC_RULES,
    DEFAULT_AUTO_FIELD,
    SECRET_KEY,
    TIME_ZONE,
    USE_TZ,
    _database,
)

_default = _database("drift_v1")
_default["NAME"] = os.environ.get("DATASET_SYNC_DRIFT_DB", _default["NAME"])
_default["TEST"] = {**_default.get("TEST", {}), "NAME": _default["NAME"]}
DATABASES = {"default": _default}
INSTALLED_APPS = ["django.contrib.contenttypes", "dataset_sync", "testapp.drift_v1"]
__all__ = [
    "DATABASES",
    "DATASET_SYNC_RULES",
    "DEFAULT_AUTO_FIELD",
    "INSTALLED_APPS",
    "SECRET_KEY",
    "TIME_ZONE",
    "USE_TZ",
]
