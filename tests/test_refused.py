"""Rows the database refuses for a reason the loader does not check before writing.

A CHECK constraint, a NOT NULL column, a value too long for its column, a foreign key that
only the database's own check finds: each gives one line naming the row (by its key in the
dump) and the field or constraint, with the first line of the database's own message, and
the target is as it was. What the database says differs between databases; the rest of the
line does not.
"""

from __future__ import annotations

import json

import pytest
from django.db import connections

from dataset_sync import load
from dataset_sync.errors import LoadIntegrityError, SchemaMismatchError
from testapp.models import Node, Page, Pin, Publisher, Question

from .conftest import copy, make_source, rows, write_document

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

HINT = "Correct the row on the source and dump it again, or change the target's schema to take it."
SPECS = [{"model": "testapp.section"}, {"model": "testapp.page"}]
#: The dumped key of the page that the database refuses, in the middle of a batch.
BAD = 917


def says(sqlite, postgresql, mariadb):
    """What the target database says, of the three."""
    vendor = connections["target"].vendor
    return {"sqlite": sqlite, "postgresql": postgresql, "mysql": mariadb}[vendor]


def pages(tmp_path, bad_title, name="bad.json"):
    """A dump of thirty pages of section 1, the page BAD titled ``bad_title``."""
    objects = [{"model": "testapp.section", "pk": 1, "fields": {"name": "s"}}]
    objects += [
        {
            "model": "testapp.page",
            "pk": pk,
            "fields": {"section": 1, "title": bad_title if pk == BAD else f"page {pk}"},
        }
        for pk in range(900, 930)
    ]
    return write_document(tmp_path, SPECS, objects, name)


def not_null(model, column):
    table = f"testapp_{model}"
    return says(
        f"NOT NULL constraint failed: {table}.{column}",
        f'null value in column "{column}" of relation "{table}" violates not-null constraint',
        f"Column '{column}' cannot be null",
    )


def check_violation():
    return says(
        "CHECK constraint failed: testapp_page_title_not_empty",
        'new row for relation "testapp_page" violates check constraint'
        ' "testapp_page_title_not_empty"',
        "CONSTRAINT `testapp_page_title_not_empty` failed for"
        f" `{connections['target'].settings_dict['NAME']}`.`testapp_page`",
    )


@pytest.fixture(params=["created", "updated"])
def written(request, tmp_path):
    """Whether the refused page is new to the target, or is there and changes."""
    if request.param == "updated":
        load(pages(tmp_path, "before", "first.json"), using="target", trust_dump_specs=True)
    return request.param


def test_a_check_constraint_names_the_row_and_the_constraint(tmp_path, written, fails):
    before = rows("target")
    path = pages(tmp_path, "")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.page(pk={BAD}): constraint 'testapp_page_title_not_empty' of the"
        f" target database refused the row ({check_violation()}). {HINT}",
        before,
        trusted=True,
    )


def test_a_null_in_a_column_that_cannot_hold_one_names_the_field(tmp_path, written, fails):
    before = rows("target")
    path = pages(tmp_path, None)
    database = not_null("page", "title")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.page(pk={BAD}): field 'title' was refused by the target database"
        f" ({database}). {HINT}",
        before,
        trusted=True,
    )


def test_a_deferred_value_the_database_refuses_names_the_field(tmp_path, fails):
    """Written after the deletions, in place of a throwaway value."""
    before = rows("target")
    objects = [
        {"model": "testapp.section", "pk": 1, "fields": {"name": "s"}},
        {"model": "testapp.page", "pk": BAD, "fields": {"section": 1, "title": None}},
    ]
    specs = [SPECS[0], {"model": "testapp.page", "defer_values": ["title"]}]
    path = write_document(tmp_path, specs, objects)
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.page(pk={BAD}): field 'title' was refused by the target database"
        f" ({not_null('page', 'title')}). {HINT}",
        before,
        trusted=True,
    )


def test_a_value_too_long_for_its_column_names_the_field(tmp_path, written, fails):
    """PostgreSQL does not say which column outside COPY (an update); the loader finds it.
    SQLite does not hold text to a length: the value loads, as Django would save it there."""
    before = rows("target")
    title = "x" * 101
    path = pages(tmp_path, title)
    if connections["target"].vendor == "sqlite":
        load(path, using="target", trust_dump_specs=True)
        assert Page.objects.using("target").get(pk=BAD).title == title
        return
    database = says(
        None, "value too long for type character varying(100)", "Data too long for column 'title'"
    )
    if connections["target"].vendor == "mysql":
        database += " at row 1"
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.page(pk={BAD}): field 'title' was refused by the target database"
        f" ({database}). {HINT}",
        before,
        trusted=True,
    )


def test_a_row_given_a_new_key_is_named_by_its_key_in_the_dump(tmp_path, fails):
    """A publisher the target lacks is inserted under a key of the target's own."""
    before = rows("target")
    path = tmp_path / "publishers.json"
    keys = {pk: f"11111111-1111-4111-8111-1111111111{pk}" for pk in range(10, 20)}
    document = {
        "version": 1,
        "specs": [{"model": "testapp.publisher"}],
        "identities": {"testapp.publisher": ["uuid"]},
        "objects": [
            {
                "model": "testapp.publisher",
                "pk": pk,
                "identity": [key],
                "fields": {"uuid": key, "name": None if pk == 15 else "P"},
            }
            for pk, key in keys.items()
        ],
    }
    path.write_text(json.dumps(document))
    database = not_null("publisher", "name")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.publisher(pk=15): field 'name' was refused by the target database"
        f" ({database}). {HINT}",
        before,
        trusted=True,
    )
    assert not Publisher.objects.using("target").exists()


def test_a_copy_saved_as_new_is_named_by_its_key_in_the_dump(tmp_path, fails):
    before = rows("target")
    path = write_document(
        tmp_path,
        [{"model": "testapp.node", "save_as_new": True}],
        [
            {"model": "testapp.node", "pk": pk, "fields": {"name": None if pk == 7 else "n"}}
            for pk in range(1, 10)
        ],
    )
    database = not_null("node", "name")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.node(pk=7): field 'name' was refused by the target database"
        f" ({database}). {HINT}",
        before,
        trusted=True,
    )
    assert not Node.objects.using("target").exists()


def test_a_row_outside_the_dataset_left_pointing_at_a_deleted_row_is_named(tmp_path, fails):
    """A foreign key that leaves deletions to the database (DO_NOTHING): the collector does
    not see the pin, and only the database's check at the end of the load finds it."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    question = Question.objects.get(text="Q1.1")
    pk = question.pk
    pin = Pin.objects.using("target").create(question_id=pk, note="outside")
    question.delete()
    before = rows("target")
    path = copy(tmp_path, "authors:1,2", "second.json")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.pin(pk={pin.pk}): field 'question' points at"
        f" testapp.question(pk={pk}), which the target database does not have once"
        " the load is done; its foreign key check refused the load. Add that row to the"
        " dataset, or make sure that no row outside the dataset points at rows the load"
        " deletes.",
        before,
    )


@pytest.mark.parametrize("field", ["section", "tags"])
def test_a_reference_of_zero_is_refused_in_one_line(tmp_path, field, fails):
    """MySQL and MariaDB take 0 in an automatic key's column as "generate one": there it
    is a value the field cannot hold; elsewhere it names a row that does not exist."""
    before = rows("target")
    if field == "section":
        model, related, held, way_out = "testapp.page", "testapp.section", "0", ""
        specs = SPECS
        objects = [{"model": "testapp.page", "pk": 900, "fields": {"section": 0, "title": "t"}}]
    else:
        model, related, held = "testapp.question", "testapp.tag", "[0]"
        way_out = ", or list 'tags' in the spec's ignore_missing_m2m to drop such links"
        specs = [{"model": "testapp.author"}, {"model": "testapp.question"}]
        objects = [
            {"model": "testapp.author", "pk": 1, "fields": {"name": "a", "email": "a@x.org"}},
            {
                "model": "testapp.question",
                "pk": 900,
                "fields": {
                    "author": 1,
                    "text": "q",
                    "pub_date": "2026-01-02T03:04:05Z",
                    "tags": [0],
                },
            },
        ]
    path = write_document(tmp_path, specs, objects)
    if connections["target"].vendor == "mysql":
        exception = SchemaMismatchError
        message = (
            f"{model}(pk=900): field '{field}' has an invalid value {held} (The database"
            " backend does not accept 0 as a value for AutoField.)."
        )
    else:
        exception = LoadIntegrityError
        message = (
            f"{model}(pk=900): field '{field}' points at {related}(pk=0), which is neither in"
            f" the dump nor in the target database. Add {related} to the dataset or create the"
            f" row on the target first{way_out}."
        )
    fails(path, exception, f"{path}: {message}", before, trusted=True)
