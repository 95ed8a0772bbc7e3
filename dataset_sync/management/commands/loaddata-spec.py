from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dataset_sync.errors import EXIT_NOTHING_TO_DO, DatasetSyncError
from dataset_sync.load import DeleteLimit, check, load
from dataset_sync.progress import TerminalProgress
from dataset_sync.report import LoadReport


def _delete_limit(text: str) -> DeleteLimit:
    try:
        return DeleteLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    # As migrate does, no system checks first: what the command needs it checks itself, and
    # refuses in one line with its exit code and summary, as cron expects. A check error in
    # any app (a setting only loads read, on the dumping side) would be exit code 1 instead.
    requires_system_checks: list[str] = []

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
            "--trust-dump-specs",
            action="store_true",
            help="Load with the dump's own specs, even when this database declares other"
            " specs for its dataset or the dump names no dataset.",
        )
        parser.add_argument(
            "--allow-cascade",
            action="store_true",
            help="Let deletions cascade to rows outside the dataset.",
        )
        parser.add_argument(
            "--adopt",
            action="store_true",
            help="Overwrite rows this database holds outside the dataset under a dumped key:"
            " for databases cloned from one another, whose rows with one key are one row.",
        )
        parser.add_argument(
            "--max-delete",
            type=_delete_limit,
            metavar="N|P%",
            help="Refuse the load if it would delete more than N rows, or more than P percent"
            " of the rows the dataset selects here.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            dest="check_only",
            help="Run every check that needs no transaction (format, signature, trust, schema"
            " drift, --max-delete) and exit with the code a load would; write nothing, lock"
            " nothing.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the report as one JSON document, also when the load fails.",
        )
        parser.add_argument(
            "--detailed-exitcode",
            action="store_true",
            help=f"Exit with {EXIT_NOTHING_TO_DO} instead of 0 when there was nothing to change.",
        )
        parser.add_argument(
            "--signals",
            action="store_true",
            help="Send pre_save and post_save (raw=True) for every row created or updated.",
        )
        parser.add_argument(
            "--lock-timeout",
            type=_seconds,
            metavar="SECONDS",
            help="Give up after waiting this long for another load into the database to end"
            " (default: wait as long as it takes).",
        )
        parser.add_argument(
            "--max-age",
            type=_seconds,
            metavar="SECONDS",
            help="Refuse dumps made longer ago than this (default: DATASET_SYNC_MAX_AGE, else"
            " any age); with a signing key, a dump's time is signed.",
        )

    def handle(
        self,
        *,
        dumps: list[str],
        database: str,
        dry_run: bool,
        ignorenonexistent: bool,
        trust_dump_specs: bool,
        allow_cascade: bool,
        adopt: bool,
        max_delete: DeleteLimit | None,
        check_only: bool,
        as_json: bool,
        detailed_exitcode: bool,
        signals: bool,
        lock_timeout: float | None,
        max_age: float | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        # Rows and rates only on a terminal: logs and pipes get the summary alone.
        terminal = verbosity >= 1 and not as_json and self.stderr.isatty()
        meter = TerminalProgress(self.stderr) if terminal else None
        lines = meter.line if meter else self.stderr.write
        log = lines if verbosity >= 2 and not as_json else None
        report = LoadReport()
        try:
            if check_only:
                check(
                    *dumps,
                    using=database,
                    ignorenonexistent=ignorenonexistent,
                    trust_dump_specs=trust_dump_specs,
                    max_delete=max_delete,
                    max_age=max_age,
                    on_batch=meter,
                    report=report,
                )
            else:
                load(
                    *dumps,
                    using=database,
                    dry_run=dry_run,
                    ignorenonexistent=ignorenonexistent,
                    trust_dump_specs=trust_dump_specs,
                    allow_cascade=allow_cascade,
                    adopt=adopt,
                    max_delete=max_delete,
                    signals=signals,
                    log=log,
                    lock_timeout=lock_timeout,
                    max_age=max_age,
                    on_batch=meter,
                    report=report,
                )
        except DatasetSyncError as exc:
            self._report(report, exc.exit_code, exc, as_json, verbosity)
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        finally:
            if meter:
                meter.close()
        nothing_done = not report.changed and not check_only
        exit_code = EXIT_NOTHING_TO_DO if detailed_exitcode and nothing_done else 0
        self._report(report, exit_code, None, as_json, verbosity)
        if exit_code:
            if self._from_shell:
                # An outcome, not an error: no "CommandError:" line on stderr.
                raise SystemExit(exit_code)
            # Through CommandError, as every exit code: call_command() never raises SystemExit.
            raise CommandError(
                f"Nothing to change (--detailed-exitcode): exit code {exit_code}.",
                returncode=exit_code,
            )

    #: Whether the command runs from the shell (manage.py) rather than call_command().
    _from_shell = False

    def run_from_argv(self, argv: list[str]) -> None:
        self._from_shell = True
        super().run_from_argv(argv)

    def _report(
        self,
        report: LoadReport,
        exit_code: int,
        error: DatasetSyncError | None,
        as_json: bool,
        verbosity: int,
    ) -> None:
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(exit_code, error), indent=2))
        elif verbosity >= 1:
            if error is None:
                for line in report.lines():
                    self.stdout.write(line)
            self.stdout.write(report.summary_line(exit_code, error))
