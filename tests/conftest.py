from __future__ import annotations

import datetime as dt
import os
import socket
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

from testapp.models import Author, Category, Choice, Question, Review, Tag

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
    """Every row of every test app table (m2m tables included) on ``alias``, ordered.

    Rows of many-to-many tables are (source, target) pairs: their own ids mean nothing.
    """
    state = {}
    for model in apps.get_app_config("testapp").get_models(include_auto_created=True):
        queryset = model._base_manager.using(alias)
        if model._meta.auto_created:
            names = [field.attname for field in model._meta.concrete_fields if field.is_relation]
            state[model._meta.label_lower] = sorted(queryset.values_list(*names))
        else:
            state[model._meta.label_lower] = list(queryset.order_by("pk").values_list())
    return state


def run(*args: str) -> tuple[str, str]:
    """Run a management command; return its stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)


def make_source(using: str = "default") -> None:
    """Two authors with questions, choices, tags, reviews and an FK cycle."""
    python, django = (Tag.objects.using(using).create(name=name) for name in ("python", "django"))
    news = Category.objects.using(using).create(name="news")
    for author_id in (1, 2):
        author = Author.objects.using(using).create(
            pk=author_id, name=f"Author {author_id}", email=f"a{author_id}@example.com"
        )
        for number in range(2):
            question = Question.objects.using(using).create(
                author=author,
                category=news if number else None,
                text=f"Q{author_id}.{number}",
                pub_date=WHEN,
            )
            question.tags.set([python, django] if number else [python])
            for choice in range(3):
                Choice.objects.using(using).create(
                    question=question, text=f"C{choice}", votes=choice, score=Decimal("1.25")
                )
            Review.objects.using(using).create(question=question, author=author, rating=4)
        author.favorite_question = author.questions.first()
        author.save(using=using)
