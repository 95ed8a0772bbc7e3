from __future__ import annotations

import os
import socket
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

SERVERS = {"postgresql": 5432, "mariadb": 3306}


def _server_unreachable() -> str | None:
    backend = os.environ.get("DATASET_SYNC_TEST_DB", "sqlite")
    if backend not in SERVERS:
        return None
    database = settings.DATABASES["default"]
    host, port = database["HOST"], int(database["PORT"])
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"{backend} at {host}:{port} is not reachable ({exc})"
    return None


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    reason = _server_unreachable()
    if reason is None:
        return
    if os.environ.get("DATASET_SYNC_REQUIRE_DB"):
        raise pytest.UsageError(f"{reason}, and DATASET_SYNC_REQUIRE_DB is set.")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_header(config: Any) -> str:
    return f"dataset_sync test database: {os.environ.get('DATASET_SYNC_TEST_DB', 'sqlite')}"


def rows(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every test app table (m2m tables included) on ``alias``, ordered."""
    state = {}
    for model in apps.get_app_config("testapp").get_models(include_auto_created=True):
        values = model._base_manager.using(alias).order_by("pk").values_list()
        state[model._meta.label_lower] = list(values)
    return state


def run(*args: str) -> tuple[str, str]:
    """Run a management command; return its stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()
