from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dataset_sync.errors import DatasetSyncError
from dataset_sync.load import load


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {text!r}")
    return seconds


class Command(BaseCommand):
    help = "Load dataset dumps in one transaction, deleting rows the source no longer has."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dumps", nargs="+", metavar="dump", help="Dump files, or - to read stdin."
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help="The database to load into.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what the load would do, including cascades; change nothing.",
        )
        parser.add_argument(
            "--ignorenonexistent",
            "-i",
            action="store_true",
            help="Skip fields in the dump that the target models do not have.",
        )
        parser.add_argument(
            "--lock-timeout",
            type=_seconds,
            metavar="SECONDS",
            help="Give up after waiting this long for another load into the database to end"
            " (default: wait as long as it takes).",
        )

    def handle(
        self,
        *,
        dumps: list[str],
        database: str,
        dry_run: bool,
        ignorenonexistent: bool,
        lock_timeout: float | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        progress = self.stderr.write if verbosity >= 2 else None
        try:
            report = load(
                *dumps,
                using=database,
                dry_run=dry_run,
                ignorenonexistent=ignorenonexistent,
                progress=progress,
                lock_timeout=lock_timeout,
            )
        except DatasetSyncError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            for line in report.lines():
                self.stdout.write(line)
