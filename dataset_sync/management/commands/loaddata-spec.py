from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dataset_sync.errors import DatasetSyncError
from dataset_sync.load import load
from dataset_sync.progress import TerminalProgress


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
            "--signals",
            action="store_true",
            help="Send pre_save and post_save (raw=True) for every row created or updated.",
        )

    def handle(
        self,
        *,
        dumps: list[str],
        database: str,
        dry_run: bool,
        ignorenonexistent: bool,
        signals: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        # Rows and rates only on a terminal: logs and pipes get the summary alone.
        meter = TerminalProgress(self.stderr) if verbosity >= 1 and self.stderr.isatty() else None
        progress = (meter.line if meter else self.stderr.write) if verbosity >= 2 else None
        try:
            report = load(
                *dumps,
                using=database,
                dry_run=dry_run,
                ignorenonexistent=ignorenonexistent,
                signals=signals,
                progress=progress,
                on_batch=meter,
            )
        except DatasetSyncError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if meter:
                meter.close()
        if verbosity >= 1:
            for line in report.lines():
                self.stdout.write(line)
