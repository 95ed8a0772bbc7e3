"""Every expected failure: one clear message, and the target exactly as before.

Each failing load is checked twice, through ``load()`` and through ``loaddata-spec``, which
must raise CommandError with the same one-line message.
"""

from __future__ import annotations

import gzip
import json

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import CommandError

from dataset_sync import Spec, dump, load
from dataset_sync.errors import (
    DatasetArgumentsError,
    DeletionProtectedError,
    DumpFormatError,
    LoadIntegrityError,
    SchemaMismatchError,
    UnknownDatasetError,
)
from testapp.models import Author, Category, Comment, Node, Person, Question, Review, Tag

from .conftest import WHEN, copy, make_source, rows, run, write, write_document

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def test_missing_file_is_refused(tmp_path, target_with_rows, fails):
    path = tmp_path / "nope.json"
    fails(path, DumpFormatError, f"{path}: no such file.", target_with_rows)


def test_directory_is_refused(tmp_path, target_with_rows, fails):
    fails(
        tmp_path, DumpFormatError, f"{tmp_path}: is a directory, not a dump file.", target_with_rows
    )


def test_file_that_is_not_json_is_refused(tmp_path, target_with_rows, fails):
    path = write(tmp_path, ["hello\n"])
    fails(
        path,
        DumpFormatError,
        f"{path}: not a dump: the file is not valid JSON"
        " (Expecting value: line 1 column 1 (char 0)). Pass a file written by dumpdata-spec.",
        target_with_rows,
    )


def test_empty_file_is_refused(tmp_path, target_with_rows, fails):
    path = write(tmp_path, [])
    fails(
        path,
        DumpFormatError,
        f"{path}: the file is empty; the dump failed or was cut off. Dump it again.",
        target_with_rows,
    )


def test_file_that_is_not_utf8_is_refused(tmp_path, target_with_rows, fails):
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xff\xfe{}")
    fails(
        path,
        DumpFormatError,
        f"{path}: not a dump: the file is not UTF-8 text. Pass a file written by dumpdata-spec.",
        target_with_rows,
    )


def test_object_lines_that_are_not_utf8_are_refused(tmp_path, target_with_rows, good_dump, fails):
    path = tmp_path / "bad.json"
    lines = [line.encode() for line in good_dump]
    # Past the first block the reader decodes with the header, and invalid UTF-8.
    lines[3] = lines[3].replace(b'"pk"', b'"' + b"x" * 20_000 + b'\xff\xfe"')
    path.write_bytes(b"".join(lines))
    fails(path, DumpFormatError, f"{path}: the text after line 1 is not UTF-8.", target_with_rows)


def test_json_that_is_not_a_dump_is_refused(tmp_path, target_with_rows, fails):
    path = write(tmp_path, ['[{"model": "testapp.tag", "pk": 1, "fields": {}}]'])
    fails(
        path,
        DumpFormatError,
        f"{path}: not a dump: expected a JSON object with an 'objects' list."
        " Pass a file written by dumpdata-spec.",
        target_with_rows,
    )


def test_dump_without_trailer_is_refused_as_truncated(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, good_dump[:4])
    fails(
        path,
        DumpFormatError,
        f"{path}: trailer missing after 3 objects; the file is truncated. Dump it again.",
        target_with_rows,
    )


def test_dump_ending_in_the_middle_of_an_object_is_refused(
    tmp_path, target_with_rows, good_dump, fails
):
    path = write(tmp_path, [*good_dump[:3], good_dump[3][:20]])
    fails(
        path,
        DumpFormatError,
        f"{path}: line 4 is not valid JSON (Unterminated string starting at); the file is"
        " truncated or corrupted. Dump it again.",
        target_with_rows,
    )


def test_truncated_compressed_dump_is_refused(tmp_path, target_with_rows, good_dump, fails):
    compressed = gzip.compress("".join(good_dump).encode())
    path = tmp_path / "bad.json.gz"
    # Cut inside the objects: the header (with its schema record) is a good part of the file.
    path.write_bytes(compressed[:-24])
    with pytest.raises(DumpFormatError) as excinfo:
        load(path, using="target")
    # How many objects come out before the stream breaks depends on zlib; the rest does not.
    assert str(excinfo.value).startswith(f"{path}: cannot be read after ")
    assert str(excinfo.value).endswith(
        " objects (Compressed file ended before the end-of-stream marker was reached);"
        " the file is truncated or corrupted. Dump it again."
    )
    assert rows("target") == target_with_rows


def test_trailer_counting_other_objects_is_refused(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, [*good_dump[:3], good_dump[3].rstrip(",\n") + "\n", good_dump[-1]])
    fails(
        path,
        DumpFormatError,
        f"{path}: the trailer counts 25 objects but the file holds 3; the file is"
        " truncated or was edited. Dump it again.",
        target_with_rows,
    )


def test_edited_object_fails_the_digest(tmp_path, target_with_rows, good_dump, fails):
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


def test_content_after_the_trailer_is_refused(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, [*good_dump, "{}\n"])
    lines = len(good_dump)
    fails(
        path,
        DumpFormatError,
        f"{path}: unexpected content after the trailer on line {lines}. Dump it again.",
        target_with_rows,
    )


def test_unknown_format_version_is_refused(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, [good_dump[0].replace('"version": 2', '"version": 3'), *good_dump[1:]])
    fails(
        path,
        DumpFormatError,
        f"{path}: format version 3 is not supported; this dataset_sync reads versions 1 and"
        " 2. Use the same dataset_sync version on both sides.",
        target_with_rows,
    )


def test_unknown_model_in_the_dump_is_refused(tmp_path, target_with_rows, fails):
    path = write_document(
        tmp_path,
        [{"model": "testapp.tag"}],
        [{"model": "testapp.gone", "pk": 1, "fields": {}}],
    )
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.gone(pk=1): unknown model; the target has no such model. Migrate"
        " the target or remove the model from the dataset.",
        target_with_rows,
        trusted=True,
    )


def test_unknown_model_in_the_dumps_specs_is_refused(tmp_path, target_with_rows, fails):
    path = write_document(tmp_path, [{"model": "testapp.gone", "delete_missing": True}], [])
    fails(
        path,
        SchemaMismatchError,
        f"{path}: Spec model 'testapp.gone' is not an installed model. Migrate the target or"
        " remove the model from the dataset.",
        target_with_rows,
        trusted=True,
    )


def test_field_the_target_lacks_is_refused(tmp_path, target_with_rows, fails):
    path = write_document(
        tmp_path,
        [{"model": "testapp.tag"}],
        [{"model": "testapp.tag", "pk": 500, "fields": {"name": "new", "colour": "red"}}],
    )
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.tag(pk=500): the dump has a field 'colour' that the target model"
        " lacks. Migrate the target, or pass --ignorenonexistent to skip such fields.",
        target_with_rows,
        trusted=True,
    )


@pytest.mark.parametrize("how", ["api", "command"])
def test_ignorenonexistent_loads_a_dump_with_a_field_the_target_lacks(tmp_path, how):
    path = write_document(
        tmp_path,
        [{"model": "testapp.tag"}],
        [{"model": "testapp.tag", "pk": 500, "fields": {"name": "new", "colour": "red"}}],
    )
    if how == "api":
        load(path, using="target", ignorenonexistent=True, trust_dump_specs=True)
    else:
        run("loaddata-spec", str(path), "--database", "target", "-i", "--trust-dump-specs")
    assert list(Tag.objects.using("target").values_list("pk", "name")) == [(500, "new")]


def test_invalid_value_is_refused(tmp_path, target_with_rows, fails):
    path = write_document(
        tmp_path,
        [{"model": "testapp.choice"}],
        [
            {
                "model": "testapp.choice",
                "pk": 900,
                "fields": {"question": 1, "text": "t", "votes": "many", "score": "1"},
            }
        ],
    )
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.choice(pk=900): field 'votes' has an invalid value 'many'"
        " (“many” value must be an integer.).",
        target_with_rows,
        trusted=True,
    )


def test_foreign_key_to_a_row_that_exists_nowhere_is_refused(tmp_path, target_with_rows, fails):
    author = Author.objects.create(pk=3, name="Only on the source", email="a3@example.com")
    question = Question.objects.create(author=author, text="orphan", pub_date=WHEN)
    path = tmp_path / "questions.json"
    dump(specs=[{"model": "testapp.question", "filter": {"author": 3}}], output=path)
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.question(pk={question.pk}): field 'author' points at"
        " testapp.author(pk=3), which is neither in the dump nor in the target database."
        " Add testapp.author to the dataset or create the row on the target first.",
        target_with_rows,
        trusted=True,
    )


def test_a_nullable_foreign_key_to_a_row_that_exists_nowhere_names_the_policy(
    tmp_path, target_with_rows, fails
):
    category = Category.objects.create(name="only on the source")
    question = Question.objects.order_by("pk").first()
    question.category = category
    question.save()
    path = tmp_path / "questions.json"
    dump(specs=[{"model": "testapp.question", "filter": {"pk": question.pk}}], output=path)
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.question(pk={question.pk}): field 'category' points at"
        f" testapp.category(pk={category.pk}), which is neither in the dump nor in the target"
        " database. Add testapp.category to the dataset or create the row on the target first,"
        " or declare what to do with it in the spec's missing_references ('category':"
        " 'set_null' or 'keep').",
        target_with_rows,
        trusted=True,
    )


def test_a_user_only_on_the_source_names_the_policy(tmp_path, target_with_rows, fails):
    """A user account that exists only on production, named by its natural key."""
    account = User.objects.create(username="prod-only")
    Person.objects.create(account=account, name="P", email="p@example.com")
    path = copy(tmp_path, "people")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.person(pk='{Person.objects.get().pk}'): field 'account' points at the"
        " auth.user with natural key ['prod-only'], which the target does not have. Add"
        " auth.user to the dataset, or create that auth.user there first, or declare what to"
        " do with it in the spec's missing_references ('account': 'set_null' or 'keep').",
        target_with_rows,
    )


def test_many_to_many_link_to_a_row_that_exists_nowhere_is_refused(
    tmp_path, target_with_rows, fails
):
    question = Question.objects.order_by("pk").first()
    tag = Tag.objects.create(name="only on the source")
    question.tags.add(tag)
    path = tmp_path / "questions.json"
    dump(specs=[{"model": "testapp.question", "filter": {"pk": question.pk}}], output=path)
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.question(pk={question.pk}): field 'tags' points at"
        f" testapp.tag(pk={tag.pk}), which is neither in the dump nor in the target database."
        " Add testapp.tag to the dataset or create the row on the target first, or list 'tags'"
        " in the spec's ignore_missing_m2m to drop such links.",
        target_with_rows,
        trusted=True,
    )


def test_natural_key_the_target_lacks_is_refused(tmp_path, target_with_rows, fails):
    node = Node.objects.create(name="commented")
    comment = Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Node), object_id=node.pk, text="hi"
    )
    path = copy(tmp_path, "comments")
    ContentType.objects.db_manager("target").filter(app_label="testapp", model="node").delete()
    ContentType.objects.clear_cache()
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.comment(pk={comment.pk}): field 'content_type' points at the"
        " contenttypes.contenttype with natural key ['testapp', 'node'], which the target does"
        " not have. Migrate the target, or create that contenttypes.contenttype there first.",
        rows("target"),
    )


def test_unique_violation_names_both_rows(tmp_path, fails):
    make_source()
    python = Tag.objects.get(name="python")
    # The target has its own 'python' tag, under another pk; authors does not delete tags.
    clash = Tag.objects.using("target").create(pk=python.pk + 1000, name="python")
    before = rows("target")
    path = copy(tmp_path, "authors:1,2")
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.tag(pk={python.pk}): field 'name' value 'python' would duplicate"
        f" testapp.tag(pk={clash.pk}), which is not in the dump. Add that row to the dataset"
        " with delete_missing, or change it on the target.",
        before,
    )


def test_protected_rows_block_a_deletion(tmp_path, restore_registry, fails):
    restore_registry("categories")(lambda args: [Spec("testapp.category", delete_missing=True)])
    Category.objects.create(name="news")
    load(copy(tmp_path, "categories", "first.json"), using="target")
    # A category only the target has, used by a question only the target has.
    stage = Category.objects.using("target").create(name="stage")
    author = Author.objects.using("target").create(pk=50, name="s", email="s@example.com")
    protecting = Question.objects.using("target").create(
        author=author, category=stage, text="protects", pub_date=WHEN
    )
    before = rows("target")
    path = copy(tmp_path, "categories", "second.json")
    fails(
        path,
        DeletionProtectedError,
        f"{path}: testapp.category: cannot delete rows missing from the dump"
        f" (pk={stage.pk}); they are protected by testapp.question(pk={protecting.pk})."
        " Add those rows to the dataset or delete them first.",
        before,
    )


def test_a_failing_second_dump_rolls_back_the_first(tmp_path, target_with_rows, good_dump):
    first = write(tmp_path, good_dump, "good.json")
    second = tmp_path / "nope.json"
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(first), str(second), "--database", "target")
    assert str(excinfo.value) == f"{second}: no such file."
    broken = write_document(
        tmp_path,
        [{"model": "testapp.tag"}],
        [{"model": "testapp.tag", "pk": 500, "fields": {"name": "new", "colour": "red"}}],
    )
    with pytest.raises(SchemaMismatchError):
        load(first, broken, using="target", trust_dump_specs=True)
    assert rows("target") == target_with_rows


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    message = (
        "Unknown dataset 'nope'; known datasets: accessories, authors, books, comments,"
        " everything, gadgets, items, makers, parts, people, questions, section, tree,"
        " widgets."
    )
    with pytest.raises(UnknownDatasetError) as excinfo:
        dump("nope:1", output=tmp_path / "d.json")
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("dumpdata-spec", "nope:1", "-o", str(tmp_path / "d.json"))
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 4)
    assert list(tmp_path.iterdir()) == []


def test_arguments_the_dataset_rejects(tmp_path):
    message = (
        "Dataset 'authors' rejected the arguments 'x': invalid literal for int() with base 10:"
        " 'x'. Check what follows 'authors:'."
    )
    with pytest.raises(DatasetArgumentsError) as excinfo:
        dump("authors:x", output=tmp_path / "d.json")
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("dumpdata-spec", "authors:x", "-o", str(tmp_path / "d.json"))
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["dumpdata-spec", "loaddata-spec"])
def test_arguments_its_filter_cannot_use(tmp_path, command):
    """The dataset takes the arguments, but a filter value is not one its field can hold:
    found when the specs are made, on either side, not as a traceback mid-dump."""
    message = (
        "Dataset 'books' rejected the arguments 'oops': the testapp.publisher spec's filter"
        " {'uuid__in': ['oops']} cannot select rows (“oops” is not a valid UUID.). Check what"
        " follows 'books:'."
    )
    with pytest.raises(CommandError) as excinfo:
        if command == "dumpdata-spec":
            run(command, "books:oops", "-o", str(tmp_path / "d.json"))
        else:
            path = tmp_path / "d.json"
            path.write_text(
                json.dumps(
                    {"version": 2, "dataset": "books", "args": "oops", "specs": [], "objects": []}
                )
            )
            before = rows("target")
            run(command, str(path), "--database", "target")
    assert (str(excinfo.value), excinfo.value.returncode) == (
        message if command == "dumpdata-spec" else f"{tmp_path / 'd.json'}: {message}",
        4,
    )
    if command == "dumpdata-spec":
        assert list(tmp_path.iterdir()) == []
    else:
        assert rows("target") == before


def test_a_unique_value_the_dump_holds_twice(tmp_path, fails):
    """Only a dump of a source that changed while it was read holds a value twice."""
    path = write_document(
        tmp_path,
        [{"model": "testapp.tag"}],
        [
            {"model": "testapp.tag", "pk": 1, "fields": {"name": "python"}},
            {"model": "testapp.tag", "pk": 2, "fields": {"name": "python"}},
        ],
    )
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.tag(pk=2): field 'name' value 'python' would duplicate"
        " testapp.tag(pk=1), which the dump holds with the same value; the source changed"
        " while it was dumped. Dump it again.",
        rows("target"),
        trusted=True,
    )


def test_a_unique_together_clash_names_both_fields(tmp_path, fails):
    author = Author.objects.using("target").create(pk=1, name="a", email="a@example.com")
    question = Question.objects.using("target").create(pk=1, author=author, text="q", pub_date=WHEN)
    clash = Review.objects.using("target").create(pk=9, question=question, author=author, rating=3)
    path = write_document(
        tmp_path,
        [{"model": "testapp.review"}],
        [
            {
                "model": "testapp.review",
                "pk": 5,
                "fields": {"question": 1, "author": 1, "rating": 4},
            }
        ],
    )
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.review(pk=5): fields 'question', 'author' values (1, 1) would"
        f" duplicate testapp.review(pk={clash.pk}), which is not in the dump. Add that row to"
        " the dataset with delete_missing, or change it on the target.",
        rows("target"),
        trusted=True,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            '"format": "dataset_sync"',
            '"format": "fixtures"',
            "not a dump: unknown format 'fixtures'.",
            id="format",
        ),
        pytest.param(
            '"rules": {}',
            '"rules": {"testapp.author": ["name"]}',
            "the header's 'rules' must map models to fields to rule names. Dump it again.",
            id="rules",
        ),
        pytest.param(
            '"identities": {',
            '"identities": {"testapp.tag": "name", ',
            "the header's 'identities' must map models to 'natural_key' or a list of field"
            " names. Dump it again.",
            id="identities",
        ),
    ],
)
def test_header_of_the_wrong_shape_is_refused(
    tmp_path, target_with_rows, good_dump, fails, old, new, message
):
    assert old in good_dump[0]
    path = write(tmp_path, [good_dump[0].replace(old, new, 1), *good_dump[1:]])
    fails(path, DumpFormatError, f"{path}: {message}", target_with_rows)


def test_header_that_is_not_json_is_refused(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, [good_dump[0].replace('"version": ', '"version" '), *good_dump[1:]])
    fails(
        path,
        DumpFormatError,
        f"{path}: line 1 is not a valid header (Expecting ':' delimiter: line 1 column 38"
        " (char 37)).",
        target_with_rows,
    )


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("7, ", id="more"),
        # The counts add up, but one more spec than the header has would select no spec.
        pytest.param("0, ", id="longer"),
        # sum() of them used to raise a TypeError.
        pytest.param('"7", ', id="string"),
        pytest.param("[], ", id="list"),
    ],
)
def test_trailer_whose_spec_counts_do_not_add_up_is_refused(
    tmp_path, target_with_rows, good_dump, fails, prefix
):
    trailer = good_dump[-1]
    assert '"spec_counts": [' in trailer
    path = write(
        tmp_path,
        [*good_dump[:-1], trailer.replace('"spec_counts": [', f'"spec_counts": [{prefix}')],
    )
    fails(
        path,
        DumpFormatError,
        f"{path}: the trailer's spec_counts are not one count per spec adding up to its count.",
        target_with_rows,
    )
