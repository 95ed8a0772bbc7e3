"""Settings for the benchmark's tool processes: the test app's, on databases of their own.

The backend comes from DATASET_SYNC_TEST_DB as in the test settings. PostgreSQL and MariaDB
use ``dataset_sync_bench_source`` and ``dataset_sync_bench_target``, which ``bench/run.py``
creates and drops, so the test databases are never touched; SQLite uses files in
DATASET_SYNC_SQLITE_DIR (a temporary directory). feincms3-data loads into ``default`` only,
so DATASET_SYNC_BENCH_DEFAULT=target points ``default`` at the target database for it.
"""

from __future__ import annotations

import os

from testapp.settings import *  # noqa: F403
from testapp.settings import BACKEND, DATABASES, INSTALLED_APPS

for _alias, _name in (("default", "source"), ("target", "target")):
    if BACKEND != "sqlite":
        DATABASES[_alias]["NAME"] = f"dataset_sync_bench_{_name}"

if os.environ.get("DATASET_SYNC_BENCH_DEFAULT") == "target":
    DATABASES["default"] = dict(DATABASES["target"])

INSTALLED_APPS = [*INSTALLED_APPS, "feincms3_data"]

# One declaration serves both tools: feincms3-data's shape, which dataset_sync accepts.
FEINCMS3_DATA_DATASETS = "bench.datasets.datasets"
DATASET_SYNC_DATASETS = "bench.datasets.datasets"
