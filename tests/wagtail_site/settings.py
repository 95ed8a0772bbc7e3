"""Settings of the Wagtail site that tests/test_wagtail.py syncs from "prod" to "stage".

DATASET_SYNC_WAGTAIL_ENV (prod or stage) picks the environment, and so the database: on
SQLite a file in DATASET_SYNC_SQLITE_DIR, on PostgreSQL and MariaDB (DATASET_SYNC_TEST_DB) a
server database named after DATASET_SYNC_DB_PREFIX, so parallel runs never share one.
"""

from __future__ import annotations

import os

from django.db import models

from testapp.settings import _database

ENVIRONMENT = os.environ.get("DATASET_SYNC_WAGTAIL_ENV", "prod")
if ENVIRONMENT not in ("prod", "stage"):
    raise ValueError(f"DATASET_SYNC_WAGTAIL_ENV={ENVIRONMENT!r}: use prod or stage.")

DATABASES = {"default": _database(f"wagtail_{ENVIRONMENT}")}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "taggit",
    "modelcluster",
    "wagtail",
    "dataset_sync",
    "tests.wagtail_site.news",
]
SECRET_KEY = "dataset-sync-wagtail-tests-only"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
STATIC_URL = "/static/"
WAGTAIL_SITE_NAME = "dataset_sync test site"
WAGTAILADMIN_BASE_URL = "http://localhost"

# The recipe (docs/wagtail.md): rows are matched by what they are, not by primary key.
DATASET_SYNC_IDENTITIES = {
    "wagtailcore.page": ["translation_key", "locale"],
    "wagtailcore.locale": "language_code",
    "auth.user": "natural_key",
    "taggit.tag": "name",
    "news.newspagetag": ["content_object", "tag"],
}
# Pages hold no personal data: their text is dumped as it is.
DATASET_SYNC_RULES = {
    models.CharField: "keep",
    models.TextField: "keep",
    models.JSONField: "keep",
}
