from __future__ import annotations

import io
import sys

import pytest

from dataset_sync import registry
from testapp.models import Question

from .conftest import make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.mark.parametrize("suffix", [".json", ".json.gz", ".json.bz2", ".json.xz"])
def test_dump_and_load_through_the_commands(tmp_path, suffix):
    make_source()
    path = tmp_path / f"dump{suffix}"
    out, err = run("dumpdata-spec", "authors:1,2", "--output", str(path))
    assert out == ""
    assert err == "Dumped 25 objects of authors:1,2.\n"

    out, err = run("loaddata-spec", str(path), "--database", "target")

    assert out.splitlines() == [
        "testapp.category: 1 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.tag: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.author: 2 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.question: 4 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.choice: 12 created, 0 updated, 0 unchanged, 0 deleted",
        "testapp.review: 4 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 25 rows ({path}).",
    ]
    assert err == ""


def test_dump_to_stdout_and_load_from_stdin(tmp_path, monkeypatch):
    make_source()
    out, _err = run("dumpdata-spec", "authors:1")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.encode())))
    out, _err = run("loaddata-spec", "-", "--database", "target")
    assert out.splitlines()[-1] == "Changed 14 rows (<stdin>)."
    assert Question.objects.using("target").count() == 2


def test_verbosity_zero_prints_nothing_and_two_prints_each_object(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "authors:1", "-o", str(path), "-v0")
    out, err = run("loaddata-spec", str(path), "--database", "target", "-v0")
    assert (out, err) == ("", "")
    Question.objects.update(text="new")
    run("dumpdata-spec", "authors:1", "-o", str(path), "-v0")
    out, err = run("loaddata-spec", str(path), "--database", "target", "-v2")
    pks = sorted(Question.objects.filter(author=1).values_list("pk", flat=True))
    assert [f"updated testapp.question(pk={pk})" for pk in pks] == [
        line for line in err.splitlines() if line.startswith("updated")
    ]


def test_dry_run_command_prints_the_plan_and_changes_nothing(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "authors:1,2", "-o", str(path))
    before = rows("target")
    out, _err = run("loaddata-spec", str(path), "--database", "target", "--dry-run")
    assert out.splitlines()[-1] == f"Would change 25 rows ({path}); dry run, nothing was written."
    assert rows("target") == before


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
