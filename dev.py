#!/usr/bin/env python3
"""Set up a virtual environment and run the demo, the tests or the benchmark.

    python3 dev.py demo                      # dump and load between two SQLite databases
    python3 dev.py test                      # the test suite on SQLite
    python3 dev.py test --db all --require   # on SQLite, PostgreSQL and MariaDB
    python3 dev.py test --db all --require --coverage   # and coverage of all three, as CI does
    python3 dev.py lint                      # ruff and mypy
    python3 dev.py bench                     # the benchmark (see bench/README.md)

Needs nothing but Python 3.10+; everything else is installed into .venv (or .venv-django-X
for --django X) from pyproject.toml.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATABASES = ("sqlite", "postgresql", "mariadb")
EXTRAS = {"sqlite": [], "postgresql": ["postgresql"], "mariadb": ["mysql"]}


def environment(django: str | None, groups: list[str], backends: list[str], python: str) -> Path:
    """A virtual environment with the project, the groups and the database drivers."""
    path = ROOT / (f".venv-django-{django}" if django else ".venv")
    extras = sorted({extra for backend in backends for extra in EXTRAS[backend]})
    packages = ["-e", f".[{','.join(extras)}]" if extras else "."]
    if django:
        packages.append(f"Django~={django}.0")
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + repr((packages, groups, python)).encode()
    ).hexdigest()
    stamp = path / ".dev-stamp"
    bin_dir = path / ("Scripts" if os.name == "nt" else "bin")
    if stamp.exists() and stamp.read_text() == wanted:
        return bin_dir
    if python != sys.executable:
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(path)], check=True)
    elif not (bin_dir / "python").exists():
        venv.create(path, with_pip=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    # Dependency groups need pip 25.1 or newer.
    subprocess.run([*pip, "--upgrade", "pip>=25.1"], check=True, cwd=ROOT)
    group_args = [arg for group in groups for arg in ("--group", group)]
    try:
        subprocess.run([*pip, *packages, *group_args], check=True, cwd=ROOT)
    except subprocess.CalledProcessError:
        if "mariadb" in backends:
            sys.stderr.write(
                "If mysqlclient failed to build: it needs the MariaDB client headers."
                " On Debian or Ubuntu: apt-get install libmariadb-dev pkg-config\n"
            )
        raise
    stamp.write_text(wanted)
    return bin_dir


def demo(args: argparse.Namespace) -> int:
    bin_dir = environment(None, [], [], sys.executable)
    return subprocess.run([str(bin_dir / "python"), "demo/run.py"], cwd=ROOT).returncode


def test(args: argparse.Namespace) -> int:
    backends = list(DATABASES) if args.db == "all" else [args.db]
    # Wagtail (tests/test_wagtail.py) only with the newest Django: the other series may have
    # no Wagtail release that supports them, and there the test skips itself.
    groups = ["test", "wagtail"] if args.django is None else ["test"]
    bin_dir = environment(args.django, groups, backends, args.python)
    python = str(bin_dir / "python")
    pytest = [python, "-m", "pytest"]
    if args.coverage:
        # Each run (and each Python subprocess of the tests) writes its own data file, and
        # the files are combined afterwards, so the figure is that of every backend together.
        subprocess.run([python, "-m", "coverage", "erase"], cwd=ROOT, check=True)
        pytest = [python, "-m", "coverage", "run", "--parallel-mode", "-m", "pytest"]
    failed = []
    # The databases run at once, each in its own pytest process: a server database spends
    # most of its time waiting for commits, so together they take little longer than the
    # slowest alone. Each one's output is printed whole when it ends.
    with contextlib.ExitStack() as outputs:
        runs = []
        for backend in backends:
            env = {**os.environ, "DATASET_SYNC_TEST_DB": backend}
            if args.require:
                env["DATASET_SYNC_REQUIRE_DB"] = "1"
            output = outputs.enter_context(tempfile.TemporaryFile(mode="w+", encoding="utf-8"))
            basetemp = Path(tempfile.gettempdir()) / f"dataset-sync-tests-{os.getpid()}-{backend}"
            command = [*pytest, f"--basetemp={basetemp}", *args.pytest_args]
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
            runs.append((backend, process, output))
        for backend, process, output in runs:
            returncode = process.wait()
            print(f"== tests on {backend}" + (f", Django {args.django}" if args.django else ""))
            output.seek(0)
            sys.stdout.write(output.read())
            sys.stdout.flush()
            if returncode != 0:
                failed.append(backend)
    if args.coverage:
        print(f"== coverage on {', '.join(backends)} combined")
        subprocess.run([python, "-m", "coverage", "combine", "--quiet"], cwd=ROOT, check=True)
        report = [python, "-m", "coverage", "report"]
        if backends != list(DATABASES):
            # fail_under is set from all three databases together; one alone covers less.
            report.append("--fail-under=0")
        if subprocess.run(report, cwd=ROOT).returncode != 0:
            failed.append("coverage")
    if failed:
        print(f"== tests failed on {', '.join(failed)}")
        return 1
    return 0


def lint(args: argparse.Namespace) -> int:
    bin_dir = environment(None, ["test", "lint"], [], sys.executable)
    commands = [
        [str(bin_dir / "ruff"), "check", "."],
        [str(bin_dir / "ruff"), "format", "--check", "."],
        [str(bin_dir / "mypy")],
    ]
    return max(subprocess.run(command, cwd=ROOT).returncode for command in commands)


def bench(args: argparse.Namespace) -> int:
    backends = [db for db in DATABASES if db != "sqlite"]
    bin_dir = environment(None, ["bench"], backends, sys.executable)
    command = [str(bin_dir / "python"), "bench/run.py", *args.bench_args]
    return subprocess.run(command, cwd=ROOT).returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="Dump and load a dataset between two SQLite databases.")
    test_parser = commands.add_parser("test", help="Run the test suite.")
    test_parser.add_argument("--db", choices=(*DATABASES, "all"), default="sqlite")
    test_parser.add_argument("--django", help="A Django series to test against, e.g. 4.2.")
    test_parser.add_argument("--python", default=sys.executable, help="The Python to use.")
    test_parser.add_argument(
        "--require", action="store_true", help="Fail instead of skipping unreachable servers."
    )
    test_parser.add_argument(
        "--coverage",
        action="store_true",
        help="Measure coverage over all backends run; with --db all, fail under the floor.",
    )
    test_parser.add_argument("pytest_args", nargs="*", help="Passed on to pytest.")
    commands.add_parser("lint", help="ruff and mypy.")
    commands.add_parser("bench", help="Run the benchmark; other options go to bench/run.py.")
    args, unknown = parser.parse_known_args()
    if args.command == "bench":
        args.bench_args = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return {"demo": demo, "test": test, "lint": lint, "bench": bench}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
