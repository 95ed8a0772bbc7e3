from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.template.defaultfilters import pluralize

from dataset_sync.dump import dump
from dataset_sync.errors import DatasetSyncError
from dataset_sync.format import ENCODERS, VERSION
from dataset_sync.progress import TerminalProgress


class Command(BaseCommand):
    help = "Dump the rows of a dataset ('name' or 'name:args') as one JSON document."
    # As migrate does, no system checks first: what the command needs it checks itself, and
    # refuses in one line with its exit code and summary, as cron expects. A check error in
    # any app (a setting only loads read, on the dumping side) would be exit code 1 instead.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="The dataset and its arguments, e.g. questions:3,4.")
        parser.add_argument(
            "-o",
            "--output",
            help="Write to this file instead of stdout; .gz, .bz2 and .xz compress.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help="The database to dump from.",
        )
        parser.add_argument(
            "--format-version",
            type=int,
            default=VERSION,
            choices=tuple(ENCODERS),
            help=(
                f"The dump format version to write (default {VERSION}). 1 cuts datetimes and"
                " times to the millisecond, for loaders that read no other: feincms3-data's,"
                " and dataset_sync's before version 2."
            ),
        )

    def handle(
        self,
        *,
        dataset: str,
        output: str | None,
        database: str,
        format_version: int,
        verbosity: int,
        **options: Any,
    ) -> None:
        # Rows and rates only on a terminal: logs and pipes get the summary alone.
        meter = TerminalProgress(self.stderr) if verbosity >= 1 and self.stderr.isatty() else None
        log = (meter.line if meter else self.stderr.write) if verbosity >= 2 else None
        if not output:
            # The dump's own lines end in newlines; as dumpdata does, add none.
            self.stdout.ending = None  # type: ignore[assignment]
        try:
            summary = dump(
                dataset,
                output=output or self.stdout,
                using=database,
                log=log,
                on_batch=meter,
                format_version=format_version,
            )
        except DatasetSyncError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        finally:
            if meter:
                meter.close()
        if verbosity >= 1:
            count = summary.count
            self.stderr.write(f"Dumped {count:,} object{pluralize(count)} of {dataset}.")
