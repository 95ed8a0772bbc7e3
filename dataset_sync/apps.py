from __future__ import annotations

from django.apps import AppConfig


class DatasetSyncConfig(AppConfig):
    name = "dataset_sync"
    verbose_name = "dataset sync"

    def ready(self) -> None:
        from dataset_sync import checks

        checks.register()
