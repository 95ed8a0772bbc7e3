"""Real second processes for the tests: a load or an application save in its own process.

The parent starts ``python -m tests.worker`` through :class:`Worker` and talks to it over two
pipes: the worker reports events (``paused``, ``locking``, ``locked``, ``blocked``, ``saved``)
and waits for ``go`` where the test makes it pause, so the tests synchronise by handshake,
never by sleeping. The worker uses the test databases of the parent: on PostgreSQL and MariaDB
their server databases; on SQLite, whose test databases live in the parent's memory, a file
copy of the target (see :func:`shared_target`).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: A failsafe against a hung test, not a synchronisation: a healthy handshake takes < 1 s.
HANDSHAKE_LIMIT = 120
LOCK_STATEMENTS = ("pg_advisory_xact_lock", "pg_try_advisory_xact_lock", "GET_LOCK", "WHERE 0 = 1")
WRITES = ("INSERT", "UPDATE", "DELETE")


class Worker:
    """A ``tests.worker`` process: ``Worker(env, "load", path, ..., pause_after_writes=2)``.

    ``"dump"`` runs dumpdata-spec instead; ``file_size_limit=N`` makes writes past ``N``
    bytes in a file fail, as on a full disk.
    """

    #: Every worker started; :func:`shared_target` kills those still running when it ends, so
    #: a failed test never leaves a paused load holding locks the next test would wait for.
    started: list[Worker] = []

    def __init__(self, env: dict[str, str], *args: str, **options: Any) -> None:
        control_read, control_write = os.pipe()
        events_read, events_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker", *args],
            cwd=ROOT,
            env={
                **env,
                "DATASET_SYNC_WORKER_CONTROL": str(control_read),
                "DATASET_SYNC_WORKER_EVENTS": str(events_write),
                "DATASET_SYNC_WORKER_OPTIONS": json.dumps(options),
            },
            pass_fds=(control_read, events_write),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        Worker.started.append(self)
        os.close(control_read)
        os.close(events_write)
        # Read unbuffered: select() cannot see lines a buffered reader has already taken in.
        self._events = events_read
        self._pending = b""
        self._control = os.fdopen(control_write, "w")

    def _next_event(self) -> str:
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self._events], [], [], HANDSHAKE_LIMIT)
            if not ready:
                return "(no event: the worker hung)"
            chunk = os.read(self._events, 4096)
            if not chunk:
                return "(no event: the worker ended)"
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def expect(self, event: str) -> None:
        """Wait for the worker to report ``event`` (it must be the next one)."""
        line = self._next_event()
        if line != event:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"expected {event!r}, got {line!r}; stdout={out!r} stderr={err!r}")

    def go(self) -> None:
        """Let a paused worker go on."""
        self._control.write("go\n")
        self._control.flush()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the worker to end; its exit status, stdout and stderr."""
        out, err = self.process.communicate(timeout=HANDSHAKE_LIMIT)
        os.close(self._events)
        self._control.close()
        return self.process.returncode, out, err

    def kill(self) -> int:
        self.process.kill()
        self.process.communicate()
        os.close(self._events)
        self._control.close()
        return self.process.returncode

    @classmethod
    def kill_all(cls) -> None:
        while cls.started:
            worker = cls.started.pop()
            if worker.process.poll() is None:
                worker.kill()


@contextmanager
def shared_target(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for workers using the parent's target test database.

    On SQLite the target is copied to a file for the workers, and copied back into the
    parent's in-memory database when the block ends, so the test then checks what the
    workers left behind.
    """
    from django.db import connections

    target = connections["target"]
    env = {**os.environ}
    if target.vendor != "sqlite":
        env["DATASET_SYNC_WORKER_DATABASES"] = json.dumps({"target": target.settings_dict["NAME"]})
        try:
            yield env
        finally:
            Worker.kill_all()
        return
    path = tmp_path / "target.sqlite3"
    target.ensure_connection()
    with sqlite3.connect(path) as copy:
        target.connection.backup(copy)
    copy.close()
    env["DATASET_SYNC_WORKER_DATABASES"] = json.dumps({"target": str(path)})
    try:
        yield env
    finally:
        Worker.kill_all()
        source = sqlite3.connect(path)
        source.backup(target.connection)
        source.close()


def target_name(env: dict[str, str]) -> str:
    """The target database's name as the workers see it."""
    return str(json.loads(env["DATASET_SYNC_WORKER_DATABASES"])["target"])


class _Hooks:
    """An execute_wrapper reporting the load lock and pausing after the n-th write."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.events = os.fdopen(int(os.environ["DATASET_SYNC_WORKER_EVENTS"]), "w")
        self.control = os.fdopen(int(os.environ["DATASET_SYNC_WORKER_CONTROL"]))
        self.pause_after_writes = options.get("pause_after_writes")
        self.pause_after_lock = options.get("pause_after_lock", False)
        self.writes = 0

    def emit(self, event: str) -> None:
        self.events.write(f"{event}\n")
        self.events.flush()

    def pause(self) -> None:
        self.emit("paused")
        assert self.control.readline() == "go\n"

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        is_lock = any(marker in sql for marker in LOCK_STATEMENTS)
        if is_lock:
            self.emit("locking")
        result = execute(sql, params, many, context)
        if is_lock:
            self.emit("locked")
            if self.pause_after_lock:
                self.pause()
        elif sql.lstrip().upper().startswith(WRITES):
            self.writes += 1
            if self.writes == self.pause_after_writes:
                self.pause()
        return result


def _save(hooks: _Hooks, options: dict[str, Any]) -> None:
    """Ordinary application saves, first refusing to wait for locks, then waiting."""
    from django.db import DatabaseError, connections, transaction

    from testapp.models import Choice

    connection = connections["target"]

    def saves() -> None:
        with transaction.atomic(using="target"):
            choice = Choice.objects.using("target").get(pk=options["choice"])
            choice.text = "saved by the application"
            choice.save(using="target")
            Choice.objects.using("target").create(
                question_id=choice.question_id, text="added by the app"
            )

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET lock_timeout = '50ms'")
        elif connection.vendor == "mysql":
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        else:
            cursor.execute("PRAGMA busy_timeout = 0")
    try:
        saves()
    except DatabaseError:
        hooks.emit("blocked")
    else:
        hooks.emit("saved")
        return
    assert hooks.control.readline() == "go\n"
    connection.close()
    saves()
    hooks.emit("saved")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testapp.settings")
    import django
    from django.conf import settings

    for alias, name in json.loads(os.environ["DATASET_SYNC_WORKER_DATABASES"]).items():
        settings.DATABASES[alias]["NAME"] = name
    django.setup()
    from django.core.management import execute_from_command_line
    from django.db import connections

    options = json.loads(os.environ["DATASET_SYNC_WORKER_OPTIONS"])
    hooks = _Hooks(options)
    if sys.argv[1] == "save":
        _save(hooks, options)
        return
    if options.get("pause_before_commit"):
        connection = connections["target"]
        commit = connection._commit

        def pause_then_commit() -> None:
            hooks.pause()
            commit()

        connection._commit = pause_then_commit  # type: ignore[method-assign]
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    if "file_size_limit" in options:
        # As a full disk would, writes past the limit fail with an OSError (EFBIG), instead
        # of the signal that would kill the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (options["file_size_limit"], previous[1]))
    command = {"load": "loaddata-spec", "dump": "dumpdata-spec"}[sys.argv[1]]
    try:
        with connections["target"].execute_wrapper(hooks):
            execute_from_command_line(["manage.py", command, *sys.argv[2:]])
    finally:
        # The limit is the command's: coverage saves its data file as the process exits.
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)


if __name__ == "__main__":
    main()
