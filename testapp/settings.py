"""Settings for the test suite and the demo.

DATASET_SYNC_TEST_DB picks the backend (sqlite, postgresql or mariadb); both the ``default``
alias (the source) and ``target`` live on that backend. DATASET_SYNC_SQLITE_DIR makes the
SQLite databases files instead of in-memory test databases (the demo uses it).
DATASET_SYNC_DB_PREFIX names the server databases (default ``dataset_sync``), so that two
checkouts can run their suites against the same server at the same time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.db import models

BACKEND = os.environ.get("DATASET_SYNC_TEST_DB", "sqlite")
SQLITE_DIR = Path(os.environ.get("DATASET_SYNC_SQLITE_DIR", Path(__file__).parent))
PREFIX = os.environ.get("DATASET_SYNC_DB_PREFIX", "dataset_sync")


def _database(name: str) -> dict[str, Any]:
    if BACKEND == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_DIR / f"{name}.sqlite3"}
    if BACKEND == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": f"{PREFIX}_{name}",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            # Tests commit after nearly every step; not waiting for the disk at each commit
            # makes them twice as fast, and loses nothing but a crashed server's last commits.
            "OPTIONS": {"options": "-c synchronous_commit=off"},
        }
    if BACKEND == "mariadb":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": f"{PREFIX}_{name}",
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    raise ValueError(f"DATASET_SYNC_TEST_DB={BACKEND!r}: use sqlite, postgresql or mariadb.")


DATABASES = {"default": _database("source"), "target": _database("target")}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "dataset_sync",
    "testapp",
    # The newer of the drift app's two states; settings_drift_v1 installs the older one.
    "testapp.drift_v2",
]
SECRET_KEY = "dataset-sync-tests-only"
# Test data only: fields without a rule of their dataset are dumped as they are.
DATASET_SYNC_RULES = {
    models.CharField: "keep",
    models.TextField: "keep",
    models.JSONField: "keep",
    models.GenericIPAddressField: "keep",
    models.FileField: "keep",
}
# Rows of these models are matched by what they are, not by primary key.
DATASET_SYNC_IDENTITIES = {"testapp.publisher": "uuid", "testapp.book": "slug"}
USE_TZ = True
TIME_ZONE = "UTC"
