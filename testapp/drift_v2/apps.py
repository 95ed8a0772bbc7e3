from __future__ import annotations

from django.apps import AppConfig


class DriftConfig(AppConfig):
    name = "testapp.drift_v2"
    label = "drift"
    default_auto_field = "django.db.models.AutoField"
