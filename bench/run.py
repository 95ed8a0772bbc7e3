"""The benchmark: dataset_sync against dumpdata/loaddata, feincms3-data and a raw-SQL floor.

    python3 dev.py bench                          # default size, every reachable database
    python3 dev.py bench --db sqlite --quick      # a smoke run in seconds
    python3 dev.py bench --memory                 # peak RSS at 1,000,000 objects (SQLite)
    python3 dev.py bench --dump-only              # the dump scenario alone, with data rules

For each database this script starts a worker process (``--worker``) with the backend's
settings; the worker creates the source and target databases, generates the data, runs every
tool as a separate process through ``bench/measure.py`` (wall time and peak RSS), checks the
target's state after every scenario, and hands its results back as JSON. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATABASES = ("sqlite", "postgresql", "mariadb")
AUTHORS, TAGS, CHOICES_PER_QUESTION, TAGS_PER_QUESTION = 50, 200, 5, 2
DEFAULT_QUESTIONS, QUICK_QUESTIONS, MEMORY_OBJECTS = 20_000, 200, 1_000_000

DUMP, EMPTY, RELOAD, CHANGED = "dump", "load into empty", "reload unchanged", "load 1% changed"
#: The same size of data with identity by a unique field, target keys disjoint (bench/identity.py).
EMPTY_ID, RELOAD_ID = "load into empty, by identity", "reload unchanged, by identity"
SCENARIOS = (DUMP, EMPTY, RELOAD, EMPTY_ID, RELOAD_ID, CHANGED)
#: Each identity scenario and the primary-key scenario it is compared with.
IDENTITY_PAIRS = {EMPTY_ID: EMPTY, RELOAD_ID: RELOAD}
DATASET_SYNC, DJANGO, FEINCMS3, RAW = (
    "dataset_sync",
    "dumpdata/loaddata",
    "feincms3-data",
    "raw SQL",
)
TOOLS = (DATASET_SYNC, DJANGO, FEINCMS3, RAW)
#: dataset_sync dumping the same dataset with a data rule on every text field, computed by the
#: database or in Python (bench/datasets.py): they take turns with the plain dump.
SQL_RULES, PYTHON_RULES = "dataset_sync, SQL rules", "dataset_sync, Python rules"
SCRUBBED = {SQL_RULES: "bench-sql-rules", PYTHON_RULES: "bench-python-rules"}
MODELS = ("testapp.author", "testapp.tag", "testapp.question", "testapp.choice")

#: Targets from the "Fast at scale" issue: (scenario, tool) -> minimum time ÷ dataset_sync.
SPEED_TARGETS = {
    (EMPTY, FEINCMS3): 15.0,
    (EMPTY, DJANGO): 15.0,
    (EMPTY, RAW): 1 / 3,
    (RELOAD, FEINCMS3): 20.0,
    (CHANGED, FEINCMS3): 15.0,
    (DUMP, DJANGO): 5.0,
}
MEMORY_TARGETS_MB = {DUMP: 80, EMPTY: 200, EMPTY_ID: 200}
#: Targets from the data rules issue: the scrubbed dump's time ÷ the plain dump's, at most.
SCRUB_TARGETS = {SQL_RULES: 1.1, PYTHON_RULES: 2.0}


@dataclass
class Result:
    """The runs of one tool in one scenario on one database."""

    database: str
    scenario: str
    tool: str
    objects: int
    walls: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    state: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


class ToolFailedError(Exception):
    pass


# --- The parent: one worker per database, then the table. -----------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--questions", type=int, help=f"Questions (default {DEFAULT_QUESTIONS:,}).")
    size.add_argument("--objects", type=int, help="Total objects; sets the number of questions.")
    size.add_argument("--quick", action="store_true", help=f"{QUICK_QUESTIONS} questions.")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="dataset_sync at 1,000,000 objects (or the size given).",
    )
    parser.add_argument(
        "--db", help="Comma separated: sqlite,postgresql,mariadb (default: all reachable)."
    )
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measurement (median).")
    parser.add_argument(
        "--repeat-alternatives",
        type=int,
        help="Runs for loaddata and feincms3-data (default --repeat).",
    )
    parser.add_argument(
        "--dump-only",
        action="store_true",
        help="Only the dump scenario: every tool, and dataset_sync with data rules.",
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the work directory and databases."
    )
    parser.add_argument("--worker", choices=DATABASES, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        args.db = args.db or "sqlite"
        if not (args.questions or args.objects or args.quick):
            args.objects = MEMORY_OBJECTS
    if args.quick:
        args.questions = QUICK_QUESTIONS
    elif args.objects:
        args.questions = max(1, (args.objects - AUTHORS - TAGS) // (1 + CHOICES_PER_QUESTION))
    args.questions = args.questions or DEFAULT_QUESTIONS
    args.repeat_alternatives = args.repeat_alternatives or args.repeat
    if args.worker:
        return worker(args)

    requested = args.db.split(",") if args.db else list(DATABASES)
    if unknown := set(requested) - set(DATABASES):
        parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="dataset-sync-bench-"))
    results: list[Result] = []
    versions: dict[str, str] = {}
    try:
        for database in requested:
            outcome = run_worker(database, args, workdir)
            if "unreachable" in outcome:
                say(f"== {database}: skipped, not reachable ({outcome['unreachable']})")
                if args.db:
                    return 1
                continue
            versions[database] = outcome["version"]
            results.extend(Result(**data) for data in outcome["results"])
    finally:
        if args.keep:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(report(results, versions, args))
    return (
        1
        if any("MISMATCH" in result.state or "FAILED" in result.state for result in results)
        else 0
    )


def run_worker(database: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    output = workdir / f"{database}.json"
    (workdir / database).mkdir()
    command = [sys.executable, __file__, "--worker", database, "--output", str(output)]
    command += ["--questions", str(args.questions), "--repeat", str(args.repeat)]
    command += ["--repeat-alternatives", str(args.repeat_alternatives)]
    command += ["--memory"] if args.memory else []
    command += ["--dump-only"] if args.dump_only else []
    command += ["--keep"] if args.keep else []
    say(f"== {database}: {objects_for(args.questions):,} objects")
    subprocess.run(command, env=tool_env(database, workdir / database), cwd=ROOT, check=True)
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def tool_env(database: str, sqlite_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATASET_SYNC_TEST_DB": database,
        "DATASET_SYNC_SQLITE_DIR": str(sqlite_dir),
        "PYTHONPATH": str(ROOT),
    }


def objects_for(questions: int) -> int:
    return AUTHORS + TAGS + questions * (1 + CHOICES_PER_QUESTION)


def say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# --- The report. ----------------------------------------------------------------------------


def report(results: list[Result], versions: dict[str, str], args: argparse.Namespace) -> str:
    lines = ["", *machine(versions), ""]
    if not results:
        return "\n".join([*lines, "No database was reachable.", ""])
    objects = results[0].objects
    lines.append(
        f"{objects:,} objects ({args.questions:,} questions, {CHOICES_PER_QUESTION} choices and"
        f" {TAGS_PER_QUESTION} tags each, {AUTHORS} authors, {TAGS} tags; plus"
        f" {args.questions * TAGS_PER_QUESTION:,} question-tag links)."
        + (
            " One run each (memory mode)."
            if args.memory
            else f" Runs: {args.repeat} for dataset_sync and raw SQL,"
            f" {args.repeat_alternatives} for loaddata and feincms3-data; times are medians."
        )
    )
    lines += [
        "",
        "| scenario | database | tool | runs | median s | peak RSS MB | objects/s |"
        " time ÷ dataset_sync | target state |",
        "|" + "---|" * 9,
    ]
    baseline = {
        (result.database, result.scenario): result.median
        for result in results
        if result.tool == DATASET_SYNC and result.walls
    }
    for scenario in SCENARIOS:
        for result in results:
            if result.scenario != scenario:
                continue
            if not result.walls:
                lines.append(
                    f"| {scenario} | {result.database} | {result.tool} | 0 | — | — | — | — |"
                    f" {result.state} |"
                )
                continue
            base = baseline.get((result.database, scenario))
            ratio = (
                "—" if result.tool == DATASET_SYNC or not base else f"{result.median / base:.1f}×"
            )
            lines.append(
                f"| {scenario} | {result.database} | {result.tool} | {len(result.walls)} |"
                f" {result.median:.2f} | {max(result.rss) / 2**20:.0f} |"
                f" {result.objects / result.median:,.0f} | {ratio} | {result.state or '—'} |"
            )
    targets = ["", "Targets (time of the alternative ÷ time of dataset_sync; not asserted):", ""]
    for (scenario, tool), minimum in SPEED_TARGETS.items():
        for database in versions:
            found = [
                r for r in results if (r.database, r.scenario, r.tool) == (database, scenario, tool)
            ]
            base = baseline.get((database, scenario))
            if not found or not found[0].walls or not base:
                continue
            ratio = found[0].median / base
            wanted = (
                f"≥ {minimum:.0f}×"
                if minimum >= 1
                else f"≥ {minimum:.2f}× (within {1 / minimum:.0f}×)"
            )
            verdict = "met" if ratio >= minimum else "NOT met"
            targets.append(
                f"- {scenario}, {database}, vs {tool}: {ratio:.2f}× (target {wanted}): {verdict}"
            )
    if len(targets) > 3:
        lines += targets
    if args.memory:
        lines += [
            "",
            "Peak RSS of dataset_sync at this size (targets: dump ≤ 80 MB, load ≤ 200 MB):",
            "",
        ]
        for result in results:
            if result.tool == DATASET_SYNC and result.scenario in MEMORY_TARGETS_MB and result.rss:
                peak = max(result.rss) / 2**20
                limit = MEMORY_TARGETS_MB[result.scenario]
                verdict = "met" if peak <= limit else "NOT met"
                lines.append(f"- {result.scenario}: {peak:.0f} MB (target ≤ {limit} MB): {verdict}")
    identity = [
        (result, baseline.get((result.database, IDENTITY_PAIRS[result.scenario])))
        for result in results
        if result.scenario in IDENTITY_PAIRS and result.walls
    ]
    if identity:
        lines += [
            "",
            "Identity by a unique field, target keys disjoint (time ÷ the same scenario by"
            " primary key):",
            "",
        ]
    for result, base in identity:
        if base:
            lines.append(f"- {result.scenario}, {result.database}: {result.median / base:.2f}×")
    scrubbed = [r for r in results if r.tool in SCRUB_TARGETS and r.walls]
    if scrubbed:
        lines += ["", "Dumps with data rules (time ÷ the plain dump's; not asserted):", ""]
    for result in scrubbed:
        base = baseline.get((result.database, DUMP))
        if base:
            ratio, limit = result.median / base, SCRUB_TARGETS[result.tool]
            verdict = "met" if ratio <= limit else "NOT met"
            lines.append(
                f"- {result.tool}, {result.database}: {ratio:.2f}× (target ≤ {limit}×): {verdict}"
            )
    return "\n".join([*lines, ""])


def machine(versions: dict[str, str]) -> list[str]:
    import django
    import psutil

    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = f" ({line.split(':', 1)[1].strip()})"
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lines = [
        f"- machine: {os.cpu_count()} CPUs{cpu}, {psutil.virtual_memory().total / 2**30:.1f} GiB"
        f" memory, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Django {django.get_version()},"
        f" feincms3-data {metadata.version('feincms3-data')},"
        f" dataset_sync {metadata.version('dataset-sync')} at {commit or '?'}"
        + (" (with uncommitted changes)" if dirty else ""),
    ]
    lines += [f"- {database}: {version}" for database, version in versions.items()]
    return lines


# --- The worker: one database. --------------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connections

    try:
        create_databases()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "skip this server"
        args.output.write_text(json.dumps({"unreachable": f"{type(exc).__name__}: {exc}"}))
        return 0
    try:
        results = Bench(args).run()
        args.output.write_text(
            json.dumps({"version": database_version(), "results": [asdict(r) for r in results]})
        )
    finally:
        connections.close_all()
        if not args.keep:
            drop_databases()
    return 0


def _server(alias: str) -> dict[str, Any]:
    from django.conf import settings

    config: dict[str, Any] = settings.DATABASES[alias]
    return config


def create_databases() -> None:
    from django.core.management import call_command

    for alias in ("default", "target"):
        config = _server(alias)
        if config["ENGINE"].endswith("sqlite3"):
            Path(config["NAME"]).unlink(missing_ok=True)
        else:
            with admin_cursor(config) as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {config['NAME']}")
                create = f"CREATE DATABASE {config['NAME']}"
                if "mysql" in config["ENGINE"]:
                    create += " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                cursor.execute(create)
        call_command("migrate", database=alias, verbosity=0)


def drop_databases() -> None:
    for alias in ("default", "target"):
        config = _server(alias)
        if not config["ENGINE"].endswith("sqlite3"):
            with admin_cursor(config) as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {config['NAME']}")


class admin_cursor:  # noqa: N801 - used like contextlib's lowercase context managers
    """A cursor on the server outside the benchmark's databases, in autocommit mode."""

    def __init__(self, config: dict[str, Any]) -> None:
        if "postgresql" in config["ENGINE"]:
            import psycopg

            self.connection: Any = psycopg.connect(
                host=config["HOST"],
                port=int(config["PORT"]),
                user=config["USER"],
                password=config.get("PASSWORD") or None,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        else:
            import MySQLdb

            self.connection = MySQLdb.connect(
                host=config["HOST"],
                port=int(config["PORT"]),
                user=config["USER"],
                password=config.get("PASSWORD", ""),
                connect_timeout=5,
            )

    def __enter__(self) -> Any:
        return self.connection.cursor()

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


def database_version() -> str:
    from django.db import connections

    connection = connections["default"]
    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    return (
        str(version).split(" on ")[0] if connection.vendor == "postgresql" else f"MariaDB {version}"
    )


class Bench:
    """Every scenario for every tool on the worker's database."""

    def __init__(self, args: argparse.Namespace) -> None:
        from django.conf import settings

        self.args = args
        self.database: str = args.worker
        self.workdir = Path(os.environ["DATASET_SYNC_SQLITE_DIR"])
        self.env = tool_env(self.database, self.workdir)
        self.memory: bool = args.memory
        self.results: list[Result] = []
        self.objects = 0
        assert settings.DATASET_SYNC_DATASETS

    def log(self, line: str) -> None:
        say(f"[{self.database}] {line}")

    def repeats(self, tool: str) -> int:
        if self.memory:
            return 1
        ours = (DATASET_SYNC, RAW, *SCRUBBED)
        return self.args.repeat if tool in ours else self.args.repeat_alternatives

    def run(self) -> list[Result]:
        from bench import raw

        self.log(f"generating {objects_for(self.args.questions):,} objects on the source")
        raw.insert("default", generate(self.args.questions))
        self.objects = objects_for(self.args.questions)
        tools = (DATASET_SYNC,) if self.memory else TOOLS
        dumps = {tool: self.workdir / f"{slug(tool)}.json" for tool in tools if tool != RAW}
        scrubbed = (
            {} if self.memory else {tool: self.workdir / f"{slug(tool)}.json" for tool in SCRUBBED}
        )
        self.measure(
            DUMP,
            {
                tool: functools.partial(self.dump, tool, path)
                for tool, path in {**dumps, **scrubbed}.items()
            },
        )
        for tool, path in scrubbed.items():
            self.check_scrubbed(tool, path)
        if self.args.dump_only:
            return self.results
        if RAW in tools:
            dumps[RAW] = self.pickle(raw.extract("default"), "raw.pickle")
        expected = snapshot("default")
        loads = {tool: functools.partial(self.load, tool, dumps[tool]) for tool in tools}
        self.measure(EMPTY, loads, prepare=lambda: raw.delete_all("target"), expected=expected)
        if not self.memory:
            # Every tool leaves the target equal to the source, so each reloads onto the
            # same state.
            self.measure(RELOAD, loads, expected=expected)
            self.check_nothing_written(dumps[DATASET_SYNC], RELOAD)
        self.run_identity()
        if self.memory:
            return self.results

        original = raw.extract("default")
        self.log(f"changing the source: {change_source()}")
        changed = {
            tool: self.workdir / f"{slug(tool)}-changed.json" for tool in dumps if tool != RAW
        }
        for tool, path in changed.items():
            self.dump(tool, path)
        changed[RAW] = self.pickle(raw.extract("default"), "raw-changed.pickle")
        expected = snapshot("default")
        self.measure(
            CHANGED,
            {tool: functools.partial(self.load, tool, changed[tool]) for tool in tools},
            prepare=lambda: raw.replace("target", original),
            expected=expected,
        )
        return self.results

    def run_identity(self) -> None:
        """Load into empty and reload by identity: dataset_sync alone, the others cannot."""
        from bench import identity

        args = self.args
        self.log(f"generating {self.objects:,} objects matched by identity on the source")
        identity.generate(args.questions, AUTHORS, TAGS, CHOICES_PER_QUESTION, TAGS_PER_QUESTION)
        path = self.workdir / "identity.json"
        self.tool(manage("dumpdata-spec", identity.NAME, "--output", str(path)))
        expected = identity.snapshot("default")
        load = {DATASET_SYNC: functools.partial(self.load, DATASET_SYNC, path)}
        self.measure(
            EMPTY_ID, load, prepare=identity.empty_target, expected=expected, of=identity.snapshot
        )
        if not identity.disjoint():
            self.result(EMPTY_ID, DATASET_SYNC).state = "MISMATCH: keys not disjoint"
        if self.memory:
            return
        self.measure(RELOAD_ID, load, expected=expected, of=identity.snapshot)
        self.check_nothing_written(path, RELOAD_ID)

    def result(self, scenario: str, tool: str) -> Result:
        return next(r for r in self.results if (r.scenario, r.tool) == (scenario, tool))

    def pickle(self, rows: Any, name: str) -> Path:
        path = self.workdir / name
        with path.open("wb") as stream:
            pickle.dump(rows, stream, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    def measure(
        self,
        scenario: str,
        actions: dict[str, Callable[[], tuple[float, int]]],
        prepare: Callable[[], Any] | None = None,
        expected: Snapshot | None = None,
        of: Callable[[str], Any] | None = None,
    ) -> None:
        """Run every tool's action in turn, round after round, and check each tool's last
        result against ``expected``.

        Taking turns means that a machine that slows down for a while (a shared virtual
        machine does) slows every tool alike, so their ratio holds.
        """
        results = {tool: Result(self.database, scenario, tool, self.objects) for tool in actions}
        self.results.extend(results.values())
        for number in range(1, max(self.repeats(tool) for tool in actions) + 1):
            for tool, action in actions.items():
                result = results[tool]
                if number > self.repeats(tool) or result.state.startswith("FAILED"):
                    continue
                if prepare:
                    prepare()
                try:
                    wall, rss = action()
                except ToolFailedError as exc:
                    result.state = f"FAILED: {exc}"
                    self.log(f"!!! {scenario}, {tool} FAILED:\n{exc}")
                    continue
                result.walls.append(wall)
                result.rss.append(rss)
                runs = f"{number}/{self.repeats(tool)}"
                self.log(f"{scenario}, {tool} {runs}: {wall:.2f} s, {rss / 2**20:.0f} MB")
                if expected is not None and number == self.repeats(tool):
                    self.verify(scenario, tool, expected, of)

    def dump(self, tool: str, path: Path) -> tuple[float, int]:
        if tool == DATASET_SYNC:
            return self.tool(manage("dumpdata-spec", "bench", "--output", str(path)))
        if tool in SCRUBBED:
            return self.tool(manage("dumpdata-spec", SCRUBBED[tool], "--output", str(path)))
        if tool == DJANGO:
            return self.tool(manage("dumpdata", *MODELS, "--output", str(path)))
        return self.tool(manage("f3dumpdata", "bench"), stdout=path)

    def load(self, tool: str, path: Path) -> tuple[float, int]:
        if tool == DATASET_SYNC:
            # Kept apart from the other tools' output for check_nothing_written().
            return self.tool(
                manage("loaddata-spec", str(path), "--database", "target"),
                stdout=self.workdir / "dataset-sync.out",
            )
        if tool == DJANGO:
            return self.tool(manage("loaddata", str(path), "--database", "target"))
        if tool == FEINCMS3:
            return self.tool(manage("f3loaddata", str(path)), DATASET_SYNC_BENCH_DEFAULT="target")
        return self.tool([sys.executable, str(BENCH / "raw.py"), str(path)])

    def tool(self, command: list[str], stdout: Path | None = None, **env: str) -> tuple[float, int]:
        from django.db import connections

        # No connection of this process may hold a lock or a transaction while a tool runs.
        connections.close_all()
        out = stdout or self.workdir / "last.out"
        err = self.workdir / "last.err"
        measured = subprocess.run(
            [sys.executable, str(BENCH / "measure.py"), str(out), str(err), "--", *command],
            env={**self.env, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(measured.stdout)
        if data["returncode"] != 0:
            tail = err.read_text(errors="replace").strip().splitlines()[-5:]
            raise ToolFailedError(
                f"{' '.join(command[1:])} exited {data['returncode']}: " + " / ".join(tail)
            )
        return float(data["wall"]), int(data["rss"])

    def verify(
        self,
        scenario: str,
        tool: str,
        expected: Snapshot,
        of: Callable[[str], Any] | None = None,
    ) -> None:
        """Compare the target with ``expected``, as ``of`` (the main dataset's ``snapshot``
        by default) reads it."""
        result = self.result(scenario, tool)
        if result.state.startswith("FAILED"):
            return
        differences = compare(expected, (of or snapshot)("target"))
        if not differences:
            result.state = result.state or "same as source"
            return
        summary = ", ".join(
            f"{table}: {len(extra):,} stale, {len(missing):,} missing, {len(changed):,} differ"
            for table, (missing, extra, changed) in differences.items()
        )
        only_stale = all(
            not missing and not changed for missing, extra, changed in differences.values()
        )
        if tool == DJANGO and only_stale:
            result.state = f"stale rows, expected: loaddata never deletes ({summary})"
            self.log(f"{scenario}, {tool}: {result.state}")
            return
        result.state = f"MISMATCH ({summary})"
        self.log("!" * 72)
        self.log(f"!!! MISMATCH after {scenario} with {tool}: {summary}")
        for table, (missing, extra, changed) in differences.items():
            self.log(
                f"!!!   {table}: e.g. stale {extra[:3]}, missing {missing[:3]},"
                f" differ {changed[:3]}"
            )
        self.log("!" * 72)

    def check_scrubbed(self, tool: str, path: Path) -> None:
        """The scrubbed dump holds every object, and none of the source's author emails."""
        from testapp.models import Author

        result = next(r for r in self.results if (r.scenario, r.tool) == (DUMP, tool))
        if result.state.startswith("FAILED"):
            return
        text = path.read_text()
        data = json.loads(text)
        emails = set(Author._base_manager.using("default").values_list("email", flat=True))
        leaked = [email for email in emails if email in text]
        if data["count"] != self.objects or leaked:
            result.state = f"MISMATCH: {data['count']:,} objects, {len(leaked)} emails left"
            self.log(f"!!! {tool}: {result.state}")
        else:
            result.state = "every object; no author email left"

    def check_nothing_written(self, path: Path, scenario: str) -> None:
        """Load the same dump once more in this process, counting the rows its statements write.

        Rows, not statements: on SQLite the load lock is a DELETE that matches no row.
        """
        from django.db import connections

        from dataset_sync import load

        result = self.result(scenario, DATASET_SYNC)
        if result.state != "same as source":
            return
        output = (self.workdir / "dataset-sync.out").read_text()
        writes: Counter[str] = Counter()

        def count(
            execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
        ) -> Any:
            result = execute(sql, params, many, context)
            verb = sql.lstrip().split(None, 1)[0].upper()
            # An unknown count (-1) counts as a write.
            # COPY: PostgreSQL's inserts.
            writes_rows = verb in {"INSERT", "UPDATE", "DELETE", "REPLACE", "COPY"}
            if writes_rows and context["cursor"].rowcount:
                writes[verb] += max(context["cursor"].rowcount, 1)
            return result

        with connections["target"].execute_wrapper(count):
            report = load(str(path), using="target")
        said_nothing = "Nothing to change" in output
        if writes or report.changed or not said_nothing:
            detail = ", ".join(f"{n} rows by {verb}" for verb, n in writes.items()) or "no rows"
            result.state = (
                f"MISMATCH: the reload wrote ({detail}; summary: {output.strip()[-120:]!r})"
            )
            self.log(f"!!! {result.state}")
        else:
            result.state = "same as source; 0 rows written, 'Nothing to change'"


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "testapp" / "manage.py"), *args]


def slug(tool: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in tool)


# --- Data: generation, changes, snapshots. -------------------------------------------------

#: Per table: rows by key (the primary key; the pair for the m2m table) -> the other values.
Snapshot = dict[str, dict[Any, tuple[Any, ...]]]


def generate(questions: int) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The source's rows, as database values for raw.insert()."""
    from django.db import connections

    from bench import raw
    from testapp.models import Author, Choice, Question, Tag

    rng = random.Random(2026)
    words = ["yes", "no", "maybe", "often", "never", "always", "sometimes", "rarely", "soon"]
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    through = Question.tags.through

    def choices() -> Iterator[dict[str, Any]]:
        for question in range(1, questions + 1):
            for number in range(CHOICES_PER_QUESTION):
                yield {
                    "id": (question - 1) * CHOICES_PER_QUESTION + number + 1,
                    "question_id": question,
                    "text": f"{rng.choice(words)} ({number})",
                    "votes": rng.randrange(10_000),
                    "score": Decimal(rng.randrange(1_000_000)) / 100,
                }

    tables: dict[Any, Iterator[dict[str, Any]]] = {
        Author: (
            {
                "id": i,
                "name": f"Author {i}",
                "email": f"author{i}@example.com",
                "favorite_question_id": None,
            }
            for i in range(1, AUTHORS + 1)
        ),
        Tag: ({"id": i, "name": f"tag-{i}"} for i in range(1, TAGS + 1)),
        Question: (
            {
                "id": i,
                "author_id": rng.randrange(1, AUTHORS + 1),
                "category_id": None,
                "text": f"Question {i}: {' '.join(rng.sample(words, 3))}?",
                # Milliseconds: Django's JSON encoder, which dumpdata and feincms3-data use,
                # drops microseconds.
                "pub_date": start + timedelta(seconds=37 * i, milliseconds=i % 1000),
            }
            for i in range(1, questions + 1)
        ),
        Choice: choices(),
        through: (
            {"question_id": i, "tag_id": tag}
            for i in range(1, questions + 1)
            for tag in rng.sample(range(1, TAGS + 1), TAGS_PER_QUESTION)
        ),
    }
    connection = connections["default"]
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for model, values in tables.items():
        fields = raw.columns(model)
        rows[model._meta.db_table] = (
            [str(f.column) for f in fields],
            [
                tuple(f.get_db_prep_save(row[f.attname], connection) for f in fields)
                for row in values
            ],
        )
    return rows


def change_source() -> str:
    """1% of questions and choices change and 1% are deleted, on the source."""
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from testapp.models import Choice, Question

    rng = random.Random(1)
    summary = []
    for model, change in (
        (Question, {"text": Concat("text", Value(" (edited)"))}),
        (Choice, {"votes": F("votes") + 1}),
    ):
        manager = model._base_manager.using("default")
        pks = sorted(manager.values_list("pk", flat=True))
        n = max(1, len(pks) // 100)
        picked = rng.sample(pks, 2 * n)
        updated = manager.filter(pk__in=picked[:n]).update(**change)
        deleted, per_model = manager.filter(pk__in=picked[n:]).delete()
        summary.append(f"{model._meta.model_name}: {updated:,} changed, {per_model} deleted")
    return "; ".join(summary)


def snapshot(using: str) -> Snapshot:
    from bench import raw

    tables: Snapshot = {}
    for model in raw.dataset_models():
        fields = raw.columns(model)
        queryset = model._base_manager.using(using).values_list(*(f.attname for f in fields))
        if model._meta.auto_created:
            tables[model._meta.db_table] = dict.fromkeys(queryset.iterator(chunk_size=10_000), ())
        else:
            tables[model._meta.db_table] = {
                row[0]: row[1:] for row in queryset.iterator(chunk_size=10_000)
            }
    return tables


def compare(
    expected: Snapshot, actual: Snapshot
) -> dict[str, tuple[list[Any], list[Any], list[Any]]]:
    """Per table that differs: keys missing on the target, keys only there, keys that differ."""
    differences = {}
    for table, rows in expected.items():
        found = actual[table]
        missing = sorted(rows.keys() - found.keys())
        extra = sorted(found.keys() - rows.keys())
        changed = sorted(key for key in rows.keys() & found.keys() if rows[key] != found[key])
        if missing or extra or changed:
            differences[table] = (missing, extra, changed)
    return differences


if __name__ == "__main__":
    sys.exit(main())
