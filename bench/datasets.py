"""The benchmark's dataset, declared once for dataset_sync and feincms3-data alike."""

from __future__ import annotations

from typing import Any

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


def datasets() -> dict[str, dict[str, Any]]:
    """FEINCMS3_DATA_DATASETS and DATASET_SYNC_DATASETS point here."""
    return {NAME: {"specs": bench_specs}}
