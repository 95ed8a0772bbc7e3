"""Concurrency: loads into one database never interleave, and neither do application saves.

Every test runs real second processes (tests/worker.py) against the same target database and
synchronises with them by handshakes over pipes.
"""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.db import connections

from dataset_sync import load
from dataset_sync.errors import LockTimeoutError
from testapp.models import Choice, Question, Review

from .conftest import copy, dataset_state, make_source, rows, run
from .worker import Worker, shared_target, target_name

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def timeout_message(name: str, waited: str = "after 0.1 seconds") -> str:
    return (
        f"Database 'target' ({name}): another load, or a transaction writing the same tables,"
        f" holds the lock; gave up {waited}. Nothing was written. Run the load again when the"
        " other one has finished, or wait longer with --lock-timeout."
    )


@pytest.fixture
def three_dumps(tmp_path):
    """The target holds authors:1,2; the first dump rewords every question, the second
    every choice (on top of the first)."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    Question.objects.update(text="reworded")
    first = copy(tmp_path, "authors:1,2", "first.json")
    Choice.objects.update(text="renamed")
    second = copy(tmp_path, "authors:1,2", "second.json")
    return first, second


def test_a_second_load_times_out_or_waits_for_the_first(tmp_path, three_dumps):
    first, second = three_dumps
    with shared_target(tmp_path) as env:
        holder = Worker(env, "load", str(first), "--database", "target", pause_after_writes=1)
        holder.expect("locking")
        holder.expect("locked")
        holder.expect("paused")

        impatient = Worker(
            env, "load", str(second), "--database", "target", "--lock-timeout", "0.1"
        )
        impatient.expect("locking")
        status, out, err = impatient.finish()
        assert status == 6
        assert out.startswith("dataset_sync.load status=lock_timeout exit_code=6 ")
        assert err == f"CommandError: {timeout_message(target_name(env))}\n"

        patient = Worker(env, "load", str(second), "--database", "target")
        patient.expect("locking")
        holder.go()
        status, out, _err = holder.finish()
        assert (status, out.splitlines()[3]) == (
            0,
            "testapp.question: 0 created, 4 updated, 0 unchanged, 0 deleted",
        )
        patient.expect("locked")
        status, out, _err = patient.finish()
    # The second load planned against the first one's result: the questions were already
    # reworded when it read them.
    assert status == 0
    assert "testapp.question: 0 created, 0 updated, 4 unchanged, 0 deleted\n" in out
    assert "testapp.choice: 0 created, 12 updated, 0 unchanged, 0 deleted\n" in out
    assert dataset_state("authors:1,2", "target") == dataset_state("authors:1,2", "default")


def test_lock_timeout_zero_gives_up_at_once_through_the_api(tmp_path, three_dumps):
    first, second = three_dumps
    before = rows("target")
    with shared_target(tmp_path) as env:
        holder = Worker(env, "load", str(first), "--database", "target", pause_after_writes=1)
        for event in ("locking", "locked", "paused"):
            holder.expect(event)
        if connections["target"].vendor == "sqlite":
            # The parent's target is an in-memory copy; the file is what the worker locked.
            impatient = Worker(
                env, "load", str(second), "--database", "target", "--lock-timeout", "0"
            )
            impatient.expect("locking")
            status, _out, err = impatient.finish()
            message = timeout_message(target_name(env), "at once")
            assert (status, err) == (6, f"CommandError: {message}\n")
        else:
            with pytest.raises(LockTimeoutError) as excinfo:
                load(second, using="target", lock_timeout=0)
            assert str(excinfo.value) == timeout_message(target_name(env), "at once")
            assert rows("target") == before
        holder.kill()
    assert rows("target") == before


def test_application_saves_wait_until_the_load_has_committed(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    # The load updates the last question, compares the choices (and leaves them alone),
    # then updates a review: it pauses after that, with the choices behind it. The
    # application changes rows the load has not written, nor rows they point at.
    Question.objects.filter(pk=Question.objects.order_by("pk").last().pk).update(text="reworded")
    Review.objects.filter(pk=Review.objects.order_by("pk").last().pk).update(rating=1)
    dumped = copy(tmp_path, "authors:1,2", "reviewed.json")
    choice = Choice.objects.order_by("pk").first()
    with shared_target(tmp_path) as env:
        loader = Worker(env, "load", str(dumped), "--database", "target", pause_after_writes=2)
        for event in ("locking", "locked", "paused"):
            loader.expect(event)
        # Changing a compared choice and adding one that delete_missing would delete must
        # both wait: had they committed now, the load's result would not be the dump.
        application = Worker(env, "save", choice=choice.pk)
        application.expect("blocked")
        loader.go()
        status, out, _err = loader.finish()
        # The last two lines are the closing line and the summary line.
        assert (status, out.splitlines()[-4:-2]) == (
            0,
            [
                "testapp.choice: 0 created, 0 updated, 12 unchanged, 0 deleted",
                "testapp.review: 0 created, 1 updated, 3 unchanged, 0 deleted",
            ],
        )
        application.go()
        application.expect("saved")
        assert application.finish()[0] == 0
    # The saves came after the load: the target holds the dump, plus the saves.
    target = Choice.objects.using("target")
    assert target.get(pk=choice.pk).text == "saved by the application"
    assert target.filter(text="added by the app", question=choice.question_id).count() == 1
    target.filter(pk=choice.pk).update(text=choice.text)
    target.filter(text="added by the app").delete()
    assert dataset_state("authors:1,2", "target") == dataset_state("authors:1,2", "default")


def test_lock_timeout_must_be_a_number_of_seconds():
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", "dump.json", "--lock-timeout", "-1")
    assert str(excinfo.value) == (
        "Error: argument --lock-timeout: expected a number of seconds, 0 or more, got '-1'"
    )
