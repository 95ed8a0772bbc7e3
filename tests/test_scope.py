"""A load writes only what the target's dataset selects, and shows every row it changes
outside it.

The attacks are forged dumps of ``authors:1`` that keep the real header and specs and a
trailer that matches their objects, as anyone can write without a signing key.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.management.base import CommandError

from dataset_sync import load
from dataset_sync.errors import DumpFormatError, OutsideDatasetError, SchemaMismatchError
from testapp.models import Author, Choice, Question

from .conftest import WHEN, copy, make_source, object_lines, retrailer, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.fixture
def stage(tmp_path):
    """The target holds authors 1 and 2 as the source does, and its own author 3 with a
    question and two choices; returns the dump of ``authors:1`` and author 3's question."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    author = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    question = Question.objects.using("target").create(author=author, text="q", pub_date=WHEN)
    for text in ("a", "b"):
        Choice.objects.using("target").create(question=question, text=text)
    return copy(tmp_path, "authors:1"), question


def forged(path, *objects, replace=None):
    """``path`` with ``objects`` added to the run of their model's spec (the last spec's when
    no spec names it), and the trailer recomputed; ``replace`` edits each object first."""
    lines = path.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0].rstrip(b"\n")[: -len(b', "objects": [')] + b"}")
    trailer = json.loads(b"{" + lines[-1][3:])
    runs, start = [], 0
    parsed = [json.loads(line) for line in object_lines(lines)]
    for count in trailer["spec_counts"]:
        runs.append(parsed[start : start + count])
        start += count
    models = [spec["model"] for spec in header["specs"]]
    for obj in objects:
        runs[models.index(obj["model"]) if obj["model"] in models else -1].append(obj)
    if replace:
        runs = [[replace(obj) for obj in run] for run in runs]
    encoded = [json.dumps(obj).encode() for run in runs for obj in run]
    data = retrailer(lines, encoded)
    lines = data.splitlines(keepends=True)
    trailer = json.loads(b"{" + lines[-1][3:])
    trailer["spec_counts"] = [len(run) for run in runs]
    path = path.with_name(f"forged-{path.name}")
    path.write_bytes(b"".join(lines[:-1]) + b"], " + json.dumps(trailer)[1:].encode() + b"\n")
    return path


def refused(path, error, message):
    """load() and loaddata-spec both refuse ``path`` with ``message`` and the error's exit
    code, and leave the target's rows, its users included, as they were."""
    before = rows("target"), list(User.objects.using("target").values_list())
    with pytest.raises(error) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert (str(excinfo.value), excinfo.value.returncode) == (message, error.exit_code)
    assert (rows("target"), list(User.objects.using("target").values_list())) == before


def test_an_unforged_dump_loads(stage):
    path, _question = stage
    report = load(forged(path), using="target")
    assert not report.changed


def test_a_row_of_a_model_the_dataset_does_not_name_is_refused(stage):
    path, _question = stage
    superuser = {
        "model": "auth.user",
        "pk": 50,
        "fields": {
            "password": "!",
            "last_login": None,
            "is_superuser": True,
            "username": "mallory",
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_staff": True,
            "is_active": True,
            "date_joined": "2026-01-01T00:00:00Z",
            "groups": [],
            "user_permissions": [],
        },
    }
    path = forged(path, superuser)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: auth.user(pk=50): the dump holds rows of auth.user, but no spec of dataset"
        " 'authors:1' names that model here, so a load must not write them. Dump the dataset"
        " again with the declaration this database has.",
    )


def test_a_row_outside_the_filter_is_not_overwritten(stage):
    path, _question = stage
    author = {
        "model": "testapp.author",
        "pk": 2,
        "fields": {"name": "Mallory", "email": "a2@example.com", "favorite_question": None},
    }
    path = forged(path, author)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.author(pk=2) is in the dump, but on this database it is outside"
        " dataset 'authors:1' (which selects testapp.author by {'pk__in': [1]}), so a load"
        " must not overwrite it. Load a dataset that selects it, or change it here first.",
    )


def test_a_row_outside_the_filter_is_not_re_parented_into_it(stage):
    path, question = stage
    moved = {
        "model": "testapp.question",
        "pk": question.pk,
        "fields": {
            "author": 1,
            "category": None,
            "text": "q",
            "pub_date": "2026-01-02T03:04:05.678Z",
            "tags": [],
        },
    }
    path = forged(path, moved)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.question(pk={question.pk}) is in the dump, but on this database it is"
        " outside dataset 'authors:1' (which selects testapp.question by {'author__in':"
        " [1]}), so a load must not overwrite it. Load a dataset that selects it, or change it"
        " here first.",
    )


def test_a_new_row_outside_the_filter_is_not_created(stage):
    path, _question = stage
    author = {
        "model": "testapp.author",
        "pk": 7,
        "fields": {"name": "Mallory", "email": "m@example.com", "favorite_question": None},
    }
    path = forged(path, author)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.author(pk=7) is in the dump, but once written, dataset 'authors:1'"
        " does not select it on this database (it selects testapp.author by {'pk__in':"
        " [1]}), so a load must not write it. Dump the dataset again; if its filter depends on"
        " rows outside it, make those the same on both sides.",
    )


def test_an_object_whose_primary_key_is_null_is_bad_input(stage):
    path, _question = stage

    first = Choice.objects.order_by("pk").first().pk

    def null_key(obj):
        return (
            {**obj, "pk": None} if (obj["model"], obj["pk"]) == ("testapp.choice", first) else obj
        )

    path = forged(path, replace=null_key)
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.choice(pk=None): the object has no primary key; every dumped object"
        " needs one. Dump it again.",
    )


def test_an_object_without_a_primary_key_is_bad_input(stage):
    path, _question = stage

    first = Choice.objects.order_by("pk").first().pk

    def drop_key(obj):
        if (obj["model"], obj["pk"]) == ("testapp.choice", first):
            return {key: value for key, value in obj.items() if key != "pk"}
        return obj

    path = forged(path, replace=drop_key)
    refused(
        path,
        DumpFormatError,
        f"{path}: line 2 is not a serialized object with 'model', 'pk' and 'fields'.",
    )
