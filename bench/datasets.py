"""The benchmark's dataset, declared once for dataset_sync and feincms3-data alike."""

from __future__ import annotations

from typing import Any

from dataset_sync import rules

#: The dataset's name on the command line of dumpdata-spec and f3dumpdata.
NAME = "bench"


def bench_specs(args: str) -> list[dict[str, Any]]:
    """Every author, tag, question and choice; stale questions and choices are deleted.

    Parents come first because feincms3-data saves in spec order (dataset_sync does not care).
    """
    return [
        {"model": "testapp.author"},
        {"model": "testapp.tag"},
        {"model": "testapp.question", "delete_missing": True},
        {"model": "testapp.choice", "delete_missing": True},
    ]


def _email(value: str, pk: int) -> str:
    return f"author{pk}@example.invalid"


def _tag(value: str, pk: int) -> str:
    return f"tag {pk}"


def _initial(value: str, pk: int) -> str:
    return value[:1] + "*" * (len(value) - 1)


#: A rule on every text field of the dataset, each computed by the database.
SQL_RULES = {
    "testapp.author.name": "hashed",
    "testapp.author.email": "unique_email",
    "testapp.tag.name": "unique_username",
    "testapp.question.text": "hashed",
    "testapp.choice.text": "hashed",
}
#: A rule on every text field of the dataset, each computed in Python for every row.
PYTHON_RULES = {
    "testapp.author.name": rules.fake("name"),
    "testapp.author.email": _email,
    "testapp.tag.name": _tag,
    "testapp.question.text": rules.fake("text"),
    "testapp.choice.text": _initial,
}


def identity_specs(args: str) -> list[dict[str, Any]]:
    """Publishers and books, matched by UUID and slug (DATASET_SYNC_IDENTITIES of testapp)."""
    return [
        {"model": "testapp.publisher"},
        {"model": "testapp.book", "delete_missing": True},
    ]


def datasets() -> dict[str, dict[str, Any]]:
    """FEINCMS3_DATA_DATASETS and DATASET_SYNC_DATASETS point here.

    The two datasets with data rules are dataset_sync's alone: the same specs, scrubbed.
    """
    return {
        NAME: {"specs": bench_specs},
        "bench-sql-rules": {"specs": bench_specs, "rules": SQL_RULES},
        "bench-python-rules": {"specs": bench_specs, "rules": PYTHON_RULES},
        "bench-identity": {"specs": identity_specs},
    }
