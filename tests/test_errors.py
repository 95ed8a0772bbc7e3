"""Every expected failure: one clear message, and the target exactly as before."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from dataset_sync import dump, load
from dataset_sync.errors import (
    DatasetArgumentsError,
    DeletionProtectedError,
    DumpFormatError,
    LoadIntegrityError,
    SchemaMismatchError,
    UnknownDatasetError,
)
from testapp.models import Author, Category, Question, Tag

from .conftest import WHEN, make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.fixture
def target_with_rows(tmp_path):
    """A target that already holds a loaded dataset, so a failed load has rows to damage."""
    make_source()
    path = tmp_path / "initial.json"
    dump("authors:1,2", output=path)
    load(path, using="target")
    return rows("target")


@pytest.fixture
def good_dump(tmp_path):
    """A dump of authors:1,2 taken after the source changed, as lines of text."""
    Question.objects.update(text="changed on the source")
    path = tmp_path / "good.json"
    dump("authors:1,2", output=path)
    return path.read_text().splitlines(keepends=True)


def write(tmp_path, lines, name="bad.json"):
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


def fails(path, exception, message, before, **options):
    with pytest.raises(exception) as excinfo:
        load(path, using="target", **options)
    assert str(excinfo.value) == message
    assert rows("target") == before


def test_missing_file(tmp_path, target_with_rows):
    path = tmp_path / "nope.json"
    fails(path, DumpFormatError, f"{path}: no such file.", target_with_rows)


def test_not_json(tmp_path, target_with_rows):
    path = write(tmp_path, ["hello\n"])
    fails(
        path,
        DumpFormatError,
        f"{path}: not a dump: the file is not valid JSON"
        " (Expecting value: line 1 column 1 (char 0)).",
        target_with_rows,
    )


def test_truncated_file_without_trailer(tmp_path, target_with_rows, good_dump):
    path = write(tmp_path, good_dump[:4])
    fails(
        path,
        DumpFormatError,
        f"{path}: trailer missing after 3 objects; the file is truncated. Dump it again.",
        target_with_rows,
    )


def test_file_ending_in_the_middle_of_an_object(tmp_path, target_with_rows, good_dump):
    path = write(tmp_path, [*good_dump[:3], good_dump[3][:20]])
    fails(
        path,
        DumpFormatError,
        f"{path}: line 4 is not valid JSON (Unterminated string starting at); the file is"
        " truncated or corrupted. Dump it again.",
        target_with_rows,
    )


def test_count_mismatch(tmp_path, target_with_rows, good_dump):
    path = write(tmp_path, [*good_dump[:3], good_dump[3].rstrip(",\n") + "\n", good_dump[-1]])
    total = len(good_dump) - 2
    fails(
        path,
        DumpFormatError,
        f"{path}: the trailer counts {total} objects but the file holds 3; the file is"
        " truncated or was edited. Dump it again.",
        target_with_rows,
    )


def test_edited_object_fails_the_digest(tmp_path, target_with_rows, good_dump):
    edited = [line.replace("changed on the source", "edited by hand") for line in good_dump]
    assert edited != good_dump
    path = write(tmp_path, edited)
    fails(
        path,
        DumpFormatError,
        f"{path}: the digest of the objects does not match the trailer; the file was changed"
        " after it was dumped. Dump it again.",
        target_with_rows,
    )


def test_unknown_format_version(tmp_path, target_with_rows, good_dump):
    path = write(tmp_path, [good_dump[0].replace('"version": 1', '"version": 2'), *good_dump[1:]])
    fails(
        path,
        DumpFormatError,
        f"{path}: format version 2 is not supported; this dataset_sync reads version 1."
        " Use the same dataset_sync version on both sides.",
        target_with_rows,
    )


def test_unknown_model_in_the_dump(tmp_path, target_with_rows):
    document = {
        "version": 1,
        "specs": [{"model": "testapp.tag"}],
        "objects": [{"model": "testapp.gone", "pk": 1, "fields": {}}],
    }
    path = write(tmp_path, [json.dumps(document)])
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.gone(pk=1): unknown model; the target has no such model. Migrate"
        " the target or remove the model from the dataset.",
        target_with_rows,
    )


def test_field_the_target_lacks_and_ignorenonexistent(tmp_path, target_with_rows):
    document = {
        "version": 1,
        "specs": [{"model": "testapp.tag"}],
        "objects": [
            {"model": "testapp.tag", "pk": 500, "fields": {"name": "new", "colour": "red"}}
        ],
    }
    path = write(tmp_path, [json.dumps(document)])
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.tag(pk=500): the dump has a field 'colour' that the target model"
        " lacks. Migrate the target, or pass --ignorenonexistent to skip such fields.",
        target_with_rows,
    )
    load(path, using="target", ignorenonexistent=True)
    assert Tag.objects.using("target").get(pk=500).name == "new"


def test_foreign_key_to_a_row_that_exists_nowhere(tmp_path, target_with_rows):
    document = {
        "version": 1,
        "specs": [{"model": "testapp.question"}],
        "objects": [
            {
                "model": "testapp.question",
                "pk": 700,
                "fields": {
                    "author": 999,
                    "category": None,
                    "text": "t",
                    "pub_date": WHEN.isoformat(),
                    "tags": [],
                },
            }
        ],
    }
    path = write(tmp_path, [json.dumps(document)])
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.question(pk=700): field 'author' points at testapp.author(pk=999),"
        " which is neither in the dump nor in the target database. Add testapp.author to the"
        " dataset or create the row on the target first.",
        target_with_rows,
    )


def test_unique_violation_names_both_rows(tmp_path, target_with_rows):
    clash = Tag.objects.using("target").create(name="stage tag")
    before = rows("target")
    document = {
        "version": 1,
        "specs": [{"model": "testapp.tag"}],
        "objects": [{"model": "testapp.tag", "pk": 600, "fields": {"name": "stage tag"}}],
    }
    path = write(tmp_path, [json.dumps(document)])
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.tag(pk=600): field 'name' value 'stage tag' would duplicate"
        f" testapp.tag(pk={clash.pk}). Add that row to the dataset with delete_missing, or"
        " change it on the target.",
        before,
    )


def test_protected_rows_block_a_deletion(tmp_path, target_with_rows):
    category = Category.objects.using("target").get(name="news")
    stage_author = Author.objects.using("target").create(pk=50, name="s", email="s@example.com")
    Question.objects.using("target").create(
        author=stage_author, category=category, text="protects", pub_date=WHEN
    )
    before = rows("target")
    document = {
        "version": 1,
        "specs": [{"model": "testapp.category", "delete_missing": True}],
        "objects": [],
    }
    path = write(tmp_path, [json.dumps(document)])
    with pytest.raises(DeletionProtectedError) as excinfo:
        load(path, using="target")
    message = str(excinfo.value)
    assert message.startswith(
        f"{path}: testapp.category: cannot delete rows missing from the dump"
        f" (pk={category.pk}); they are protected by testapp.question(pk="
    )
    assert message.endswith("Add those rows to the dataset or delete them first.")
    assert rows("target") == before


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownDatasetError) as excinfo:
        dump("nope:1", output=tmp_path / "d.json")
    assert str(excinfo.value) == (
        "Unknown dataset 'nope'; known datasets: authors, comments, everything, items,"
        " questions, tree."
    )
    assert not (tmp_path / "d.json").exists()


def test_arguments_the_dataset_rejects(tmp_path):
    with pytest.raises(DatasetArgumentsError) as excinfo:
        dump("authors:x", output=tmp_path / "d.json")
    assert str(excinfo.value) == (
        "Dataset 'authors' rejected the arguments 'x': invalid literal for int() with base 10: 'x'"
    )


def test_commands_turn_errors_into_one_line(tmp_path, target_with_rows):
    path = tmp_path / "missing.json"
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert str(excinfo.value) == f"{path}: no such file."
    with pytest.raises(CommandError) as excinfo:
        run("dumpdata-spec", "nope")
    assert str(excinfo.value).startswith("Unknown dataset 'nope'; known datasets: authors,")
    assert rows("target") == target_with_rows
