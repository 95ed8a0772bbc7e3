from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models.signals import post_save

from dataset_sync import Spec, dump, registry
from testapp.models import Choice, Question, Tag

from .conftest import copy, dataset_state, make_everything, make_source, rows, run, summary

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.mark.parametrize("suffix", [".json", ".json.gz", ".json.bz2", ".json.xz"])
def test_dump_and_load_through_the_commands(tmp_path, suffix):
    make_source()
    path = tmp_path / f"dump{suffix}"
    out, err = run("dumpdata-spec", "authors:1,2", "--output", str(path))
    assert out == ""
    assert err == "Dumped 25 objects of authors:1,2.\n"

    out, err = run("loaddata-spec", str(path), "--database", "target")

    lines, fields = summary(out)
    assert lines == [
        "testapp.category: 1 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.tag: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.author: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.question: 4 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.choice: 12 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.review: 4 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 25 rows ({path}).",
    ]
    assert fields == {
        "status": "changed",
        "exit_code": "0",
        "dataset": "authors:1,2",
        "source": str(path),
        "created": "25",
        "updated": "0",
        "unchanged": "0",
        "deleted": "0",
        "cascaded": "0",
        "cascade_updated": "0",
        "dry_run": "false",
    }
    assert err == ""


class Stdin:
    """Stands in for sys.stdin: the loader reads the bytes of ``sys.stdin.buffer``."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(io.BytesIO(data))


def test_dump_to_stdout_is_the_same_bytes_as_a_dump_to_a_file(tmp_path, settings):
    # The digest covers every line, so a newline added by the command's output wrapper would
    # fail it; the time in the header is pinned to compare the rest.
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "authors:1", "-o", str(path))
    out, _err = run("dumpdata-spec", "authors:1")

    def without_time(text):
        return re.sub(r'"created": "[^"]*"', '"created": ""', text)

    assert without_time(out) == without_time(path.read_text())
    assert out.endswith('"}\n') and not out.endswith("\n\n")


def test_counts_of_one_are_singular(tmp_path, restore_registry):
    restore_registry("one-tag")(lambda args: [Spec("testapp.tag", filter={"name": "python"})])
    make_source()
    path = tmp_path / "dump.json"
    _out, err = run("dumpdata-spec", "one-tag", "-o", str(path), "-v2")
    assert err == "testapp.tag: 1 object\nDumped 1 object of one-tag.\n"

    out, err = run("loaddata-spec", str(path), "--database", "target", "-v2")

    assert summary(out)[0][-1] == f"Changed 1 row ({path})."
    pk = Tag.objects.get(name="python").pk
    assert err == f"created testapp.tag(pk={pk})\ntestapp.tag: 1 object\n"


def test_dump_to_stdout_and_load_from_stdin(monkeypatch):
    make_source()
    out, err = run("dumpdata-spec", "authors:1")
    assert err == "Dumped 14 objects of authors:1.\n"
    monkeypatch.setattr(sys, "stdin", Stdin(out.encode()))

    out, _err = run("loaddata-spec", "-", "--database", "target")

    assert summary(out)[0][-1] == "Changed 14 rows (<stdin>)."
    assert not sys.stdin.buffer.closed
    assert dataset_state("authors:1", "target") == dataset_state("authors:1", "default")


@pytest.mark.parametrize(
    "compress", [gzip.compress, bz2.compress, lzma.compress], ids=["gzip", "bzip2", "xz"]
)
def test_compressed_stdin_is_recognised(monkeypatch, compress):
    make_source()
    out, _err = run("dumpdata-spec", "authors:1")
    monkeypatch.setattr(sys, "stdin", Stdin(compress(out.encode())))

    out, _err = run("loaddata-spec", "-", "--database", "target")

    assert summary(out)[0][-1] == "Changed 14 rows (<stdin>)."
    assert not sys.stdin.buffer.closed
    assert dataset_state("authors:1", "target") == dataset_state("authors:1", "default")


def test_several_dumps_in_one_command_load_together(tmp_path):
    make_everything()
    authors, tree = tmp_path / "authors.json.gz", tmp_path / "tree.json"
    run("dumpdata-spec", "authors:1", "-o", str(authors))
    run("dumpdata-spec", "tree", "-o", str(tree))

    out, _err = run("loaddata-spec", str(authors), str(tree), "--database", "target")

    lines, fields = summary(out)
    assert lines[-2:] == [
        "testapp.node: 3 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 17 rows ({authors}, {tree}).",
    ]
    assert (fields["dataset"], fields["source"]) == ("authors:1,tree", f"{authors},{tree}")
    assert dataset_state("authors:1", "target") == dataset_state("authors:1", "default")
    assert dataset_state("tree", "target") == dataset_state("tree", "default")


def test_verbosity_zero_prints_nothing(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    assert run("dumpdata-spec", "authors:1", "-o", str(path), "-v0") == ("", "")
    assert run("loaddata-spec", str(path), "--database", "target", "-v0") == ("", "")
    assert Question.objects.using("target").count() == 2


def test_verbosity_two_prints_each_object_on_stderr(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    _out, err = run("dumpdata-spec", "authors:1", "-o", str(path), "-v2")
    assert err.splitlines() == [
        "testapp.choice: 6 objects",
        "testapp.review: 2 objects",
        "testapp.question: 2 objects",
        "testapp.author: 1 object",
        "testapp.tag: 2 objects",
        "testapp.category: 1 object",
        "Dumped 14 objects of authors:1.",
    ]
    run("loaddata-spec", str(path), "--database", "target")
    question = Question.objects.filter(author=1).order_by("pk").first()
    Question.objects.filter(pk=question.pk).update(text="new")
    stale = Choice.objects.filter(question=question).order_by("pk").first().pk
    Choice.objects.filter(pk=stale).delete()
    run("dumpdata-spec", "authors:1", "-o", str(path), "-v0")

    out, err = run("loaddata-spec", str(path), "--database", "target", "-v2")

    assert [line for line in err.splitlines() if not line.endswith((" object", " objects"))] == [
        f"updated testapp.question(pk={question.pk})",
        f"deleted testapp.choice(pk={stale})",
    ]
    assert summary(out)[0][-1] == f"Changed 2 rows ({path})."


def test_dry_run_prints_the_counts_a_real_load_prints_and_changes_nothing(tmp_path):
    make_source()
    path = tmp_path / "first.json"
    run("dumpdata-spec", "authors:1,2", "-o", str(path))
    run("loaddata-spec", str(path), "--database", "target")
    Question.objects.filter(author=1).update(text="changed")
    Choice.objects.filter(question__author=2).order_by("pk").first().delete()
    Choice.objects.create(question=Question.objects.order_by("pk").first(), text="new")
    path = tmp_path / "second.json"
    run("dumpdata-spec", "authors:1,2", "-o", str(path))
    before = rows("target")

    dry, _err = run("loaddata-spec", str(path), "--database", "target", "--dry-run")

    assert rows("target") == before
    real, _err = run("loaddata-spec", str(path), "--database", "target")
    (dry_lines, dry_fields), (real_lines, real_fields) = summary(dry), summary(real)
    assert dry_lines[:-1] == real_lines[:-1]
    assert dry_lines[-1] == f"Would change 4 rows ({path}); dry run, nothing was written."
    assert real_lines[-1] == f"Changed 4 rows ({path})."
    assert "testapp.choice: 1 created, 0 updated, 11 unchanged, 1 deleted" in real_lines
    assert {**dry_fields, "dry_run": "false"} == real_fields


def test_dump_to_a_missing_directory_fails_with_one_line(tmp_path):
    make_source()
    path = tmp_path / "missing" / "dump.json"
    with pytest.raises(CommandError) as excinfo:
        run("dumpdata-spec", "authors:1", "-o", str(path))
    assert str(excinfo.value) == (
        f"{path}: cannot write the dump (No such file or directory). Check that the directory"
        " exists and is writable."
    )


def test_json_report(tmp_path):
    make_source()
    path = copy(tmp_path, "authors:1")

    out, err = run("loaddata-spec", str(path), "--database", "target", "--json", "-v2")

    report = json.loads(out)
    assert report.pop("duration") >= 0
    assert report == {
        "status": "changed",
        "exit_code": 0,
        "error": None,
        "dry_run": False,
        "sources": [str(path)],
        "datasets": [{"dataset": "authors", "args": "1"}],
        "drift": [],
        "models": {
            label: {
                "created": created,
                "updated": 0,
                "unchanged": 0,
                "deleted": 0,
                "cascaded": 0,
                "cascade_updated": 0,
            }
            for label, created in [
                ("testapp.category", 1),
                ("testapp.tag", 2),
                ("testapp.author", 1),
                ("testapp.question", 2),
                ("testapp.choice", 6),
                ("testapp.review", 2),
            ]
        },
        "totals": {
            "created": 14,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "cascaded": 0,
            "cascade_updated": 0,
        },
    }
    assert err == ""


def test_failed_load_ends_with_a_summary_line_and_its_exit_code(tmp_path):
    path = tmp_path / "missing.json"
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("loaddata-spec", str(path), "--database", "target", stdout=out)
    assert excinfo.value.returncode == 4
    lines, fields = summary(out.getvalue())
    assert lines == []
    assert fields == {
        "status": "bad_input",
        "exit_code": "4",
        "dataset": "-",
        "source": str(path),
        "created": "0",
        "updated": "0",
        "unchanged": "0",
        "deleted": "0",
        "cascaded": "0",
        "cascade_updated": "0",
        "dry_run": "false",
        "error": "DumpFormatError",
    }

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("loaddata-spec", str(path), "--database", "target", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["status"], report["exit_code"], report["error"]) == (
        "bad_input",
        4,
        {"type": "DumpFormatError", "message": f"{path}: no such file."},
    )


def test_a_load_refused_after_its_header_was_read_names_the_dataset(tmp_path):
    make_source()
    path = copy(tmp_path, "authors:1")
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(
            "loaddata-spec", str(path), "--database", "target", "--max-age", "1e-9", stdout=out
        )
    assert excinfo.value.returncode == 5
    _lines, fields = summary(out.getvalue())
    assert (fields["status"], fields["dataset"], fields["error"]) == (
        "refused",
        "authors:1",
        "StaleDumpError",
    )


def test_a_dump_that_names_no_dataset_is_summarised_as_such(tmp_path):
    Tag.objects.create(name="python")
    path = tmp_path / "specs.json"
    dump(specs=[Spec("testapp.tag")], output=path)
    out = io.StringIO()
    call_command(
        "loaddata-spec", str(path), "--database", "target", "--trust-dump-specs", stdout=out
    )
    _lines, fields = summary(out.getvalue())
    assert (fields["status"], fields["dataset"]) == ("changed", "-")


def test_detailed_exitcode_tells_nothing_to_change_apart(tmp_path):
    make_source()
    path = copy(tmp_path, "authors:1")
    run("loaddata-spec", str(path), "--database", "target", "--detailed-exitcode")

    out = io.StringIO()
    # As every exit code, through CommandError: call_command() never raises SystemExit.
    with pytest.raises(CommandError) as excinfo:
        call_command(
            "loaddata-spec", str(path), "--database", "target", "--detailed-exitcode", stdout=out
        )

    assert excinfo.value.returncode == 3
    assert str(excinfo.value) == "Nothing to change (--detailed-exitcode): exit code 3."
    lines, fields = summary(out.getvalue())
    assert lines[-1] == f"Nothing to change ({path})."
    assert (fields["status"], fields["exit_code"]) == ("unchanged", "3")


def test_exit_code_of_the_process(tmp_path):
    """The codes reach the shell: manage.py exits with them."""
    manage = Path(__file__).resolve().parent.parent / "testapp" / "manage.py"
    missing = subprocess.run(
        [sys.executable, str(manage), "loaddata-spec", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 4
    assert missing.stderr == f"CommandError: {tmp_path / 'missing.json'}: no such file.\n"
    assert "status=bad_input exit_code=4" in missing.stdout


def test_nothing_to_change_reaches_the_shell_as_exit_code_3_without_an_error(tmp_path):
    """Cron wrappers treat stderr as trouble: exit code 3 is an outcome, not an error."""
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "authors:1", "-o", str(path))
    manage = Path(__file__).resolve().parent.parent / "testapp" / "manage.py"
    env = {**os.environ, "DATASET_SYNC_TEST_DB": "sqlite", "DATASET_SYNC_SQLITE_DIR": str(tmp_path)}

    def shell(*args):
        return subprocess.run(
            [sys.executable, str(manage), *args], capture_output=True, text=True, env=env
        )

    assert shell("migrate", "--database", "target", "-v0").returncode == 0
    load = ("loaddata-spec", str(path), "--database", "target", "--detailed-exitcode")
    first = shell(*load)
    assert (first.returncode, first.stderr) == (0, "")
    again = shell(*load)
    assert (again.returncode, again.stderr) == (3, "")
    assert "status=unchanged exit_code=3" in again.stdout


def test_feincms3_data_style_datasets_setting(tmp_path, settings):
    settings.DATASET_SYNC_DATASETS = "tests.test_commands.feincms3_datasets"
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "f3-tags", "-o", str(path))
    out, _err = run("loaddata-spec", str(path), "--database", "target")
    assert out.splitlines()[0] == "testapp.tag: 2 created, 0 updated, 0 unchanged, 0 deleted"
    assert "f3-tags" in registry.datasets()


def feincms3_datasets():
    return {"f3-tags": {"specs": lambda args: [{"model": "testapp.tag", "delete_missing": True}]}}


def test_signals_option_sends_raw_saves(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "authors:1", "-o", str(path))
    received = []

    def record(sender, instance, raw, using, **kwargs):
        if using == "target":
            received.append((sender._meta.label_lower, instance.pk, raw, kwargs["created"]))

    post_save.connect(record, weak=False, dispatch_uid="test-signals-option")
    try:
        run("loaddata-spec", str(path), "--database", "target")
        assert received == []
        choice = Choice.objects.filter(question__author=1).order_by("pk").first()
        Choice.objects.using("target").filter(pk=choice.pk).delete()
        run("loaddata-spec", str(path), "--database", "target", "--signals")
    finally:
        post_save.disconnect(dispatch_uid="test-signals-option")

    assert received == [("testapp.choice", choice.pk, True, True)]


class Terminal(io.StringIO):
    """Stands in for a terminal: a stream whose isatty() is true."""

    def isatty(self):
        return True


def run_on_terminal(*args):
    out, err = io.StringIO(), Terminal()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def progress_lines(err):
    r"""The last state of every progress line, without the rate (which depends on time)."""
    return [
        re.sub(r", [\d,]+ rows/s$", "", line.rsplit("\r", 1)[-1])
        for line in err.split("\n")
        if line.startswith("\r")
    ]


def test_progress_on_a_terminal_shows_rows_per_model(tmp_path, settings):
    settings.DATASET_SYNC_BATCH_SIZE = 2
    make_source()
    path = tmp_path / "dump.json"

    _out, err = run_on_terminal("dumpdata-spec", "authors:1", "-o", str(path))

    assert progress_lines(err) == [
        "testapp.choice: 6 rows",
        "testapp.review: 2 rows",
        "testapp.question: 2 rows",
        "testapp.author: 1 rows",
        "testapp.tag: 2 rows",
        "testapp.category: 1 rows",
    ]
    assert err.split("\n")[-2] == "Dumped 14 objects of authors:1."
    assert re.search(r"\rtestapp\.choice: 4 rows(, [\d,]+ rows/s)?\r", err)

    out, err = run_on_terminal("loaddata-spec", str(path), "--database", "target")

    assert progress_lines(err) == [
        f"reading {path}: 14 rows",
        "testapp.category: 1 rows",
        "testapp.tag: 2 rows",
        "testapp.author: 1 rows",
        "testapp.question: 2 rows",
        "testapp.choice: 6 rows",
        "testapp.review: 2 rows",
    ]
    assert summary(out)[0][-1] == f"Changed 14 rows ({path})."


def test_progress_stays_off_without_a_terminal_and_at_verbosity_zero(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    assert run("dumpdata-spec", "authors:1", "-o", str(path)) == (
        "",
        "Dumped 14 objects of authors:1.\n",
    )
    assert run_on_terminal("dumpdata-spec", "authors:1", "-o", str(path), "-v0") == ("", "")
    assert run("loaddata-spec", str(path), "--database", "target")[1] == ""
    assert run_on_terminal("loaddata-spec", str(path), "--database", "target", "-v0") == ("", "")
