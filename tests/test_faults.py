"""Fault injection: a load that fails at any moment leaves the target exactly as it was.

A fault is raised in the middle of each phase of a load (while rows are upserted, while
many-to-many links are set, while rows are deleted, at the constraint check, at commit) by
an execute_wrapper on the target's real connection, and a loading process is killed with
SIGKILL part-way through. Afterwards every row of every table equals its state before.
"""

from __future__ import annotations

import tempfile

import pytest
from django.db import connections

from dataset_sync import load
from dataset_sync.errors import CommitRefusedError, LoadIntegrityError, SpoolError

from .conftest import copy, make_everything, rows
from .test_roundtrip import change_source
from .worker import Worker, shared_target

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

WRITES = ("INSERT", "UPDATE", "DELETE")
M2M_TABLE = "testapp_question_tags"


class InjectedFaultError(Exception):
    """Raised by a fault; not a database error, so no layer of the loader handles it."""


def is_write(sql):
    return sql.lstrip().upper().startswith(WRITES) and not sql.endswith(" WHERE 0 = 1")


def constraint_check(sql):
    """The first statement of connection.check_constraints() on each database."""
    return any(
        marker in sql
        for marker in ("SET CONSTRAINTS ALL IMMEDIATE", "PRAGMA foreign_key_check", "as REFERRING")
    )


class Fault:
    """An execute_wrapper: at the ``nth`` statement ``matches`` accepts, raise or run ``sql``."""

    def __init__(self, matches, nth=1, sql=None, after=False):
        self.matches, self.nth, self.sql, self.after = matches, nth, sql, after
        self.seen = 0

    def __call__(self, execute, sql, params, many, context):
        if not self.matches(sql):
            return execute(sql, params, many, context)
        self.seen += 1
        if self.seen != self.nth:
            return execute(sql, params, many, context)
        if self.sql is None:
            raise InjectedFaultError(f"statement {self.nth}: {sql.split()[0]}")
        if not self.after:
            execute(self.sql, [], False, context)
        result = execute(sql, params, many, context)
        if self.after:
            execute(self.sql, [], False, context)
        return result


@pytest.fixture
def outdated_target(tmp_path, settings):
    """A target holding an older state of `everything`, and a dump that changes every phase.

    Small batches make every phase run several statements, so a fault lands in its middle.
    """
    settings.DATASET_SYNC_BATCH_SIZE = 2
    make_everything()
    load(copy(tmp_path, "everything", "first.json"), using="target")
    change_source()
    return copy(tmp_path, "everything", "second.json"), rows("target")


def dangling(table, columns):
    """SQL adding a row whose foreign keys point nowhere."""
    quote = connections["target"].ops.quote_name
    names = ", ".join(quote(column) for column in columns)
    values = ", ".join("'x'" if column == "text" else "999999" for column in columns)
    return f"INSERT INTO {quote(table)} ({names}) VALUES ({values})"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            lambda: Fault(lambda sql: is_write(sql) and M2M_TABLE not in sql, 3), id="upserts"
        ),
        pytest.param(lambda: Fault(lambda sql: is_write(sql) and M2M_TABLE in sql), id="m2m"),
        pytest.param(
            lambda: Fault(
                lambda sql: (
                    sql.lstrip().upper().startswith("DELETE")
                    and is_write(sql)
                    and M2M_TABLE not in sql
                ),
                2,
            ),
            id="deletions",
        ),
        pytest.param(lambda: Fault(constraint_check), id="constraint-check"),
    ],
)
def test_a_fault_in_any_phase_leaves_the_target_as_it_was(outdated_target, fault):
    path, before = outdated_target
    fault = fault()
    with connections["target"].execute_wrapper(fault), pytest.raises(InjectedFaultError):
        load(path, using="target")
    assert fault.seen >= fault.nth
    assert rows("target") == before


def test_a_constraint_violation_found_by_the_check_leaves_the_target_as_it_was(outdated_target):
    path, before = outdated_target
    # A row nobody dumped, pointing nowhere, appears inside the load's transaction.
    fault = Fault(
        constraint_check,
        sql=dangling("testapp_comment", ["id", "content_type_id", "object_id", "text"]),
    )
    with connections["target"].execute_wrapper(fault), pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target")
    # The row is gone with the check's savepoint by the time the loader looks for it: the
    # message is the database's first line.
    if connections["target"].vendor == "postgresql":
        expected = (
            'insert or update on table "testapp_comment" violates foreign key constraint'
            ' "testapp_comment_content_type_id_3b6e788b_fk_django_co"'
        )
    else:
        expected = (
            "The row in table 'testapp_comment' with primary key '999999' has an invalid foreign"
            " key: testapp_comment.content_type_id contains a value '999999' that does not have a"
            " corresponding value in django_content_type.id."
        )
    assert str(excinfo.value) == (
        f"{path}: the target database's constraint check refused the load ({expected})."
    )
    assert rows("target") == before


def test_a_failing_commit_leaves_the_target_as_it_was(outdated_target):
    path, before = outdated_target
    vendor = connections["target"].vendor
    if vendor == "mysql":
        pytest.skip(
            "MySQL checks foreign keys at once, so nothing is left for its commit to refuse"
        )
    # After the check, a link pointing nowhere appears: only the commit can refuse it.
    marker = (
        "SET CONSTRAINTS ALL DEFERRED" if vendor == "postgresql" else "PRAGMA foreign_key_check"
    )
    fault = Fault(
        lambda sql: marker in sql, sql=dangling(M2M_TABLE, ["question_id", "tag_id"]), after=True
    )
    with connections["target"].execute_wrapper(fault), pytest.raises(CommitRefusedError) as excinfo:
        load(path, using="target")
    if vendor == "postgresql":
        expected = (
            'insert or update on table "testapp_question_tags" violates foreign key constraint'
            ' "testapp_question_tag_question_id_a59eaf6a_fk_testapp_q"'
        )
    else:
        expected = "FOREIGN KEY constraint failed"
    assert str(excinfo.value) == (
        f"{path}: the target database refused to commit the load ({expected}); nothing was written."
    )
    assert fault.seen >= 1
    assert rows("target") == before


@pytest.mark.parametrize(
    "pause",
    [{"pause_after_writes": 5}, {"pause_before_commit": True}],
    ids=["writing", "committing"],
)
def test_a_loading_process_killed_part_way_leaves_the_target_as_it_was(
    tmp_path, outdated_target, pause
):
    path, before = outdated_target
    with shared_target(tmp_path) as env:
        loader = Worker(env, "load", str(path), "--database", "target", **pause)
        loader.expect("locking")
        loader.expect("locked")
        loader.expect("paused")
        assert loader.kill() == -9
    assert rows("target") == before
    # The dead load's locks went with its connection.
    load(path, using="target", lock_timeout=60)
    assert rows("target") != before


#: Bytes a file may grow to in the processes below: less than any dump or spool needs.
FILE_SIZE_LIMIT = 100


@pytest.mark.parametrize("name", ["dump.json", "dump.json.gz"])
def test_a_dump_that_runs_out_of_disk_fails_in_one_line_and_leaves_no_file(tmp_path, name):
    output = tmp_path / "out"
    output.mkdir()
    with shared_target(tmp_path) as env:
        dumper = Worker(
            env,
            "dump",
            "authors:1",
            "--database",
            "target",
            "-o",
            str(output / name),
            file_size_limit=FILE_SIZE_LIMIT,
        )
        status, out, err = dumper.finish()
    assert (status, out, err) == (
        4,
        "",
        f"CommandError: {output / name}: cannot write the dump (File too large); nothing was"
        " left behind. Free space on its disk or lift the file size limit, and dump it"
        " again.\n",
    )
    assert list(output.iterdir()) == []


def test_a_load_that_runs_out_of_disk_while_spooling_leaves_the_target_as_it_was(
    tmp_path, outdated_target
):
    path, before = outdated_target
    with shared_target(tmp_path) as env:
        loader = Worker(
            env, "load", str(path), "--database", "target", file_size_limit=FILE_SIZE_LIMIT
        )
        status, out, err = loader.finish()
    assert (status, err) == (
        4,
        f"CommandError: {path}: cannot keep the dump's objects on disk while loading (File too"
        f" large) in {tempfile.gettempdir()}; nothing was written. Point TMPDIR at a writable"
        " directory with space, or lift the file size limit, and load it again.\n",
    )
    assert "status=bad_input exit_code=4" in out
    assert rows("target") == before


def test_a_load_without_a_usable_temporary_directory_is_one_line(outdated_target, monkeypatch):
    path, before = outdated_target
    # As TMPDIR naming a directory that is not there: tempfile reads it once, into tempdir.
    missing = path.parent / "missing"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    with pytest.raises(SpoolError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == (
        f"{path}: cannot keep the dump's objects on disk while loading (No such file or"
        f" directory) in {missing}; nothing was written. Point TMPDIR at a writable"
        " directory with space, or lift the file size limit, and load it again."
    )
    assert rows("target") == before
