"""Identity: rows matched by what they are, on databases whose keys diverge."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.test import override_settings

from dataset_sync import DeleteLimit, Spec, dump, load
from dataset_sync.errors import (
    IdentityMismatchError,
    InvalidSpecError,
    LoadIntegrityError,
    SchemaMismatchError,
)
from testapp.datasets import books
from testapp.models import Author, Book, Comment, Novel, Publisher, Tag

from .conftest import Statements, copy, refused, rows

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

PRESS = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER = uuid.UUID("22222222-2222-4222-8222-222222222222")


def make_books(using="default", first_key=None):
    """A publisher with books, a novel, a sequel, links and tags; keys as the database gives,
    but ``first_key`` for the first book."""
    press = Publisher.objects.using(using).create(uuid=PRESS, name="Press")
    python = Tag.objects.using(using).create(name="python")
    first = Book.objects.using(using).create(
        pk=first_key, slug="first", title="First", publisher=press
    )
    second = Novel.objects.using(using).create(
        slug="second", title="Second", publisher=press, genre="crime"
    )
    first.sequel = second
    first.save(using=using)
    first.tags.set([python])
    second.see_also.set([first])
    return press


def shift_keys(using="target", by=7):
    """Books of stage editors, under keys the target's sequence hands out."""
    press = Publisher.objects.using(using).create(uuid=OTHER, name="Stage press")
    for number in range(by):
        Book.objects.using(using).create(slug=f"stage-{number}", title="Stage", publisher=press)
    return press


def by_identity(using):
    """The books dataset's rows on ``using``, keyed and linked by identity, not by key."""
    books = Book.objects.using(using).filter(publisher__uuid=PRESS)
    return {
        "publishers": sorted(
            Publisher.objects.using(using).filter(uuid=PRESS).values_list("uuid", "name")
        ),
        "books": sorted(
            (
                book.slug,
                book.title,
                book.publisher.uuid,
                book.sequel.slug if book.sequel else None,
                sorted(other.slug for other in book.see_also.all()),
                sorted(tag.name for tag in book.tags.all()),
            )
            for book in books
        ),
        "novels": sorted(
            Novel.objects.using(using).filter(publisher__uuid=PRESS).values_list("slug", "genre")
        ),
    }


def test_rows_are_matched_by_identity_when_keys_diverge(tmp_path):
    stage_press = shift_keys()
    # The source's first book has the key of a stage editor's book.
    first_key = Book.objects.using("target").get(slug="stage-3").pk
    make_books(first_key=first_key)
    stage_books = dict(
        Book.objects.using("target").filter(publisher=stage_press).values_list("pk", "slug")
    )
    assert first_key in stage_books
    outside = {label: rows("target")[label] for label in ("testapp.book",)}

    report = load(copy(tmp_path, f"books:{PRESS}"), using="target")

    assert by_identity("target") == by_identity("default")
    # The target's own rows are untouched, whatever their keys.
    mine = dict(
        Book.objects.using("target").filter(publisher=stage_press).values_list("pk", "slug")
    )
    assert mine == stage_books
    kept = {row for row in rows("target")["testapp.book"] if row[0] in stage_books}
    assert kept == set(outside["testapp.book"])
    assert report.counts["testapp.book"].created == 2
    assert report.counts["testapp.publisher"].created == 1
    # Keys are the target's: the random publisher key and the books' are not the source's.
    assert Publisher.objects.using("target").get(uuid=PRESS).pk != Publisher.objects.get().pk
    assert Book.objects.using("target").get(slug="first").pk != first_key


def test_a_second_load_of_the_same_dump_writes_nothing(tmp_path):
    make_books()
    shift_keys()
    path = copy(tmp_path, f"books:{PRESS}")
    load(path, using="target")
    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        report = load(path, using="target")
    assert statements.writes() == []
    assert not report.changed


def test_matched_rows_are_updated_in_place_and_keep_their_keys(tmp_path):
    make_books()
    shift_keys()
    load(copy(tmp_path, f"books:{PRESS}", "first.json"), using="target")
    key = Book.objects.using("target").get(slug="first").pk
    # A row of the target that points at the book: its reference must still hold.
    Comment.objects.using("target").create(
        content_type=ContentType.objects.db_manager("target").get_for_model(Book),
        object_id=key,
        text="stage comment",
    )
    Book.objects.filter(slug="first").update(title="First, revised")

    report = load(copy(tmp_path, f"books:{PRESS}", "second.json"), using="target")

    book = Book.objects.using("target").get(slug="first")
    assert (book.pk, book.title) == (key, "First, revised")
    assert Comment.objects.using("target").get().object_id == key
    assert report.counts["testapp.book"].updated == 1


def test_delete_missing_compares_identities(tmp_path):
    make_books()
    stage_press = shift_keys()
    load(copy(tmp_path, f"books:{PRESS}", "first.json"), using="target")
    Novel.objects.filter(slug="second").delete()
    stage_books = list(Book.objects.using("target").filter(publisher=stage_press).values_list())

    report = load(copy(tmp_path, f"books:{PRESS}", "second.json"), using="target")

    assert by_identity("target") == by_identity("default")
    assert not Book.objects.using("target").filter(slug="second").exists()
    after = list(Book.objects.using("target").filter(publisher=stage_press).values_list())
    assert after == stage_books
    assert report.counts["testapp.book"].deleted == 1
    assert report.counts["testapp.novel"].deleted == 1


def test_generic_foreign_keys_follow_identity(tmp_path, restore_registry):
    restore_registry("book-comments")(
        lambda args: [Spec("testapp.comment", filter={"text__startswith": "on"})]
    )
    make_books()
    shift_keys()
    book = Book.objects.get(slug="second")
    Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Book), object_id=book.pk, text="on a book"
    )
    load(copy(tmp_path, f"books:{PRESS}", "books.json"), using="target")

    load(copy(tmp_path, "book-comments", "comments.json"), using="target")

    comment = Comment.objects.using("target").get(text="on a book")
    assert comment.content_object.slug == "second"
    assert comment.object_id != book.pk


def test_a_generic_foreign_key_to_a_row_new_in_the_same_dump(tmp_path, restore_registry):
    """As Wagtail's revisions name their page: a comment names a book that the target does
    not have yet by a NOT NULL object id, and the book points back at its latest comment.
    The book is written first, its reference to the comment waits."""
    restore_registry("books-with-comments")(
        lambda args: [
            *books(str(PRESS)),
            Spec("testapp.comment", filter={"text__startswith": "on"}, delete_missing=True),
        ]
    )
    shift_keys()
    make_books()
    book_type = ContentType.objects.get_for_model(Book)
    for book in Book.objects.all():
        book.latest_comment = Comment.objects.create(
            content_type=book_type, object_id=book.pk, text=f"on {book.slug}"
        )
        book.save()
    path = copy(tmp_path, "books-with-comments")

    report = load(path, using="target")

    def comments(using):
        return sorted(
            (comment.text, comment.content_object.slug, comment.content_object.latest_comment.text)
            for comment in Comment.objects.using(using).filter(text__startswith="on")
        )

    assert (
        comments("target")
        == comments("default")
        == [
            ("on first", "first", "on first"),
            ("on second", "second", "on second"),
        ]
    )
    first = Book.objects.using("target").get(slug="first")
    assert first.pk != Book.objects.get(slug="first").pk
    assert report.counts["testapp.comment"].created == 2
    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        assert not load(path, using="target").changed
    assert statements.writes() == []


def test_a_reference_to_a_row_neither_dumped_nor_on_the_target_is_refused(
    tmp_path, restore_registry
):
    restore_registry("first-book")(
        lambda args: [
            Spec("testapp.book", filter={"slug": "first"}),
            Spec("testapp.publisher"),
            Spec("testapp.tag"),
        ]
    )
    make_books()
    path = copy(tmp_path, "first-book")
    before = rows("target")

    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target")

    key = Book.objects.get(slug="first").pk
    assert str(excinfo.value) == (
        f"{path}: testapp.book(pk={key}): field 'sequel' points at the testapp.book with"
        " identity ['second'], which is neither in the dump nor on the target. Add testapp.book"
        " to the dataset or create the row on the target first, or declare what to do with it"
        " in the spec's missing_references ('sequel': 'set_null' or 'keep')."
    )
    assert rows("target") == before


@pytest.mark.parametrize(("policy", "expected"), [("set_null", None), ("keep", "stage-sequel")])
def test_missing_references_policy(tmp_path, restore_registry, policy, expected):
    restore_registry("first-book")(
        lambda args: [
            Spec(
                "testapp.book",
                filter={"slug": "first"},
                missing_references={"sequel": policy},
            ),
            Spec("testapp.publisher"),
            Spec("testapp.tag"),
        ]
    )
    make_books()
    press = Publisher.objects.using("target").create(uuid=PRESS, name="Press")
    sequel = Book.objects.using("target").create(slug="stage-sequel", title="S", publisher=press)
    Book.objects.using("target").create(slug="first", title="Old", publisher=press, sequel=sequel)

    load(copy(tmp_path, "first-book"), using="target")

    book = Book.objects.using("target").get(slug="first")
    assert book.title == "First"
    assert (book.sequel.slug if book.sequel else None) == expected


def test_missing_references_policy_for_a_key_reference(tmp_path, restore_registry):
    restore_registry("first-book")(
        lambda args: [
            Spec("testapp.book", filter={"slug": "first"}, missing_references={"editor": "keep"}),
            Spec(
                "testapp.book", filter={"slug": "second"}, missing_references={"editor": "set_null"}
            ),
            Spec("testapp.publisher"),
            Spec("testapp.tag"),
        ]
    )
    make_books()
    # A key the target does not hold: references by primary key name rows by it.
    editor = Author.objects.create(pk=50, name="Ed", email="ed@example.com")
    Book.objects.filter(slug__in=["first", "second"]).update(editor=editor)
    Book.objects.update(sequel=None)
    press = Publisher.objects.using("target").create(uuid=PRESS, name="Press")
    stage_editor = Author.objects.using("target").create(name="Stage", email="s@example.com")
    Book.objects.using("target").create(
        slug="first", title="Old", publisher=press, editor=stage_editor
    )

    load(copy(tmp_path, "first-book"), using="target")

    books = dict(Book.objects.using("target").values_list("slug", "editor"))
    assert books == {"first": stage_editor.pk, "second": None}


def test_natural_key_identity(tmp_path, restore_registry):
    restore_registry("groups")(lambda args: [Spec("auth.group", identity="natural_key")])
    for name in ("editors", "readers"):
        Group.objects.create(name=name)
    for name in ("stage-a", "stage-b", "stage-c", "readers"):
        Group.objects.using("target").create(name=name)
    readers = Group.objects.using("target").get(name="readers").pk

    report = load(copy(tmp_path, "groups"), using="target")

    assert sorted(Group.objects.using("target").values_list("name", flat=True)) == [
        "editors",
        "readers",
        "stage-a",
        "stage-b",
        "stage-c",
    ]
    assert Group.objects.using("target").get(name="readers").pk == readers
    assert (report.counts["auth.group"].created, report.counts["auth.group"].unchanged) == (1, 1)


def test_identities_must_agree_between_source_and_target(tmp_path):
    make_books()
    path = copy(tmp_path, f"books:{PRESS}")
    before = rows("target")
    message = (
        f"{path}: testapp.book: the dump recognises rows by (slug), this database by primary"
        " key. Declare the same identity on both sides (DATASET_SYNC_IDENTITIES, or the spec's"
        " identity), and dump it again."
    )
    with (
        override_settings(DATASET_SYNC_IDENTITIES={"testapp.publisher": "uuid"}),
        pytest.raises(IdentityMismatchError) as excinfo,
    ):
        load(path, using="target")
    assert str(excinfo.value) == message
    assert rows("target") == before


def test_identity_without_a_unique_constraint_is_refused(tmp_path):
    make_books()
    path = copy(tmp_path, f"books:{PRESS}")
    before = rows("target")
    with override_settings(
        DATASET_SYNC_IDENTITIES={"testapp.publisher": "name", "testapp.book": "slug"}
    ):
        with pytest.raises(InvalidSpecError) as excinfo:
            dump(f"books:{PRESS}", output=tmp_path / "other.json")
        with pytest.raises(InvalidSpecError) as loading:
            load(path, using="target")
    assert str(excinfo.value) == (
        "testapp.publisher: identity (name) is not covered by a unique constraint, so several"
        " rows could have it. Add one (unique=True, unique_together or a UniqueConstraint"
        " without a condition), or choose other fields."
    )
    assert str(loading.value) == f"{path}: {excinfo.value}"
    assert rows("target") == before


def hand_made(tmp_path, objects):
    path = tmp_path / "hand-made.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "specs": [{"model": "testapp.publisher"}],
                "identities": {"testapp.book": ["slug"], "testapp.publisher": ["uuid"]},
                "objects": objects,
            }
        )
    )
    return path


def test_a_row_without_its_identity_is_refused(tmp_path):
    path = hand_made(
        tmp_path,
        [{"model": "testapp.publisher", "pk": 5, "fields": {"uuid": str(PRESS), "name": "P"}}],
    )
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.publisher(pk=5): the row has no identity, but this database matches"
        " testapp.publisher rows by (uuid). Declare the same identity where the dump is made,"
        " and dump it again.",
        rows("target"),
    )


def test_an_identity_held_twice_is_refused(tmp_path):
    Publisher.objects.using("target").create(uuid=PRESS, name="P")
    path = hand_made(
        tmp_path,
        [
            {
                "model": "testapp.publisher",
                "pk": pk,
                "identity": [str(PRESS)],
                "fields": {"uuid": str(PRESS), "name": "P"},
            }
            for pk in (5, 6)
        ],
    )
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.publisher: the dump holds identity ['{PRESS}'] more than once; dump"
        " it again.",
        rows("target"),
    )


def test_a_reference_to_a_row_the_load_deletes_is_refused(tmp_path):
    """Found by the property test: a link by identity to a book the target holds in the
    dataset, which the source holds outside it, so the load deletes it."""
    press = make_books()
    elsewhere = Publisher.objects.create(uuid=OTHER, name="Elsewhere")
    moved = Book.objects.create(slug="moved", title="Moved", publisher=elsewhere)
    Book.objects.get(slug="first").see_also.add(moved)
    target_press = Publisher.objects.using("target").create(uuid=press.uuid, name="Press")
    Book.objects.using("target").create(slug="moved", title="Moved", publisher=target_press)
    path = copy(tmp_path, f"books:{PRESS}")
    before = rows("target")

    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target")

    first = Book.objects.get(slug="first").pk
    moved_here = Book.objects.using("target").get(slug="moved").pk
    assert str(excinfo.value) == (
        f"{path}: testapp.book(pk={first}): field 'see_also' points at"
        f" testapp.book(pk={moved_here}), which is neither in the dump nor in the target"
        " database. Add testapp.book to the dataset or create the row on the target first, or"
        " list 'see_also' in the spec's ignore_missing_m2m to drop such links."
    )
    assert rows("target") == before


def test_a_child_the_source_no_longer_has_goes_and_its_parent_row_stays(tmp_path):
    """A novel on the target that the source now holds as a plain book: the novel's row is
    deleted, the book's stays as the dump wrote it."""
    make_books()
    load(copy(tmp_path, f"books:{PRESS}", "first.json"), using="target")
    Novel.objects.get(slug="second").delete(keep_parents=True)
    Book.objects.filter(slug="second").update(title="Second, no longer a novel")

    report = load(copy(tmp_path, f"books:{PRESS}", "second.json"), using="target")

    assert by_identity("target") == by_identity("default")
    assert Book.objects.using("target").get(slug="second").title == "Second, no longer a novel"
    assert (report.counts["testapp.novel"].deleted, report.counts["testapp.book"].deleted) == (
        1,
        0,
    )


@pytest.mark.parametrize(
    "book_identity",
    [
        pytest.param(["slug", "publisher"], id="with-a-reference-matched-by-identity"),
        pytest.param(["slug", "editor"], id="with-a-reference-matched-by-key"),
    ],
)
def test_an_identity_of_several_fields_one_of_them_a_reference(tmp_path, book_identity):
    identities = {"testapp.publisher": "uuid", "testapp.book": book_identity}
    with override_settings(DATASET_SYNC_IDENTITIES=identities):
        make_books()
        shift_keys()
        # The target holds the first book under a key of its own.
        press = Publisher.objects.using("target").create(uuid=PRESS, name="Press")
        mine = Book.objects.using("target").create(slug="first", title="Old", publisher=press)
        path = copy(tmp_path, f"books:{PRESS}")

        report = load(path, using="target")
        statements = Statements()
        with connections["target"].execute_wrapper(statements):
            again = load(path, using="target")

    assert by_identity("target") == by_identity("default")
    assert Book.objects.using("target").get(slug="first").pk == mine.pk
    counts = report.counts["testapp.book"]
    assert (counts.created, counts.updated) == (1, 1)
    assert statements.writes() == []
    assert not again.changed


def test_an_identity_with_the_wrong_number_of_values_is_refused(tmp_path):
    path = hand_made(
        tmp_path,
        [
            {
                "model": "testapp.publisher",
                "pk": 5,
                "identity": [str(PRESS), "extra"],
                "fields": {"uuid": str(PRESS), "name": "P"},
            }
        ],
    )
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.publisher: identity ['{PRESS}', 'extra'] does not have the 1 value(s)"
        " of (uuid) this database declares.",
        rows("target"),
    )


def test_an_identity_its_field_cannot_hold_is_refused(tmp_path):
    path = hand_made(
        tmp_path,
        [
            {
                "model": "testapp.publisher",
                "pk": 5,
                "identity": ["not a uuid"],
                "fields": {"uuid": str(PRESS), "name": "P"},
            }
        ],
    )
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.publisher: identity ['not a uuid']: field 'uuid' cannot hold"
        " 'not a uuid'.",
        rows("target"),
    )


@override_settings(DATASET_SYNC_IDENTITIES={"testapp.person": ["phone", "nickname"]})
def test_an_identity_that_names_several_target_rows_is_refused(tmp_path, restore_registry):
    """A unique constraint does not cover NULL: two rows without a phone share the
    identity (None, "kim"), so it cannot say which one a dumped row is."""
    from testapp.models import Person

    restore_registry("kims")(lambda args: [Spec("testapp.person")])
    Person.objects.create(name="Kim", email="kim@example.com", nickname="kim")
    kept = [
        Person.objects.using("target").create(name="Kim", email=f"{n}@example.com", nickname="kim")
        for n in ("one", "two")
    ]
    path = copy(tmp_path, "kims")
    before = rows("target")

    with pytest.raises(SchemaMismatchError) as excinfo:
        load(path, using="target")

    one, two = (f"testapp.person(pk='{person.pk}')" for person in kept)
    assert str(excinfo.value) in {
        f"{path}: testapp.person: identity [None, 'kim'] names {first} and {second} on the"
        " target; an identity must name one row."
        for first, second in ((one, two), (two, one))
    }
    assert rows("target") == before


def test_a_natural_key_that_cannot_be_looked_up_is_refused(tmp_path):
    path = tmp_path / "hand-made.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "specs": [{"model": "testapp.person"}],
                "objects": [
                    {
                        "model": "testapp.person",
                        "pk": str(PRESS),
                        "fields": {
                            "name": "Kim",
                            "email": "kim@example.com",
                            "account": ["kim", "extra"],
                        },
                    }
                ],
            }
        )
    )
    before = rows("target")
    with pytest.raises(SchemaMismatchError) as excinfo:
        load(path, using="target", trust_dump_specs=True)
    assert str(excinfo.value) == (
        f"{path}: auth.user: natural key ['kim', 'extra'] cannot be looked up"
        " (BaseUserManager.get_by_natural_key() takes 2 positional arguments but 3 were given)."
    )
    assert rows("target") == before


def test_a_child_whose_parent_row_is_nowhere_is_refused(tmp_path, restore_registry):
    """A novel is its book's row: without the book in the dump or on the target, it cannot
    land anywhere."""
    restore_registry("novels")(lambda args: [Spec("testapp.novel")])
    make_books()
    path = copy(tmp_path, "novels")
    dumped = Novel.objects.get().pk
    before = rows("target")

    with pytest.raises(SchemaMismatchError) as excinfo:
        load(path, using="target")

    assert str(excinfo.value) == (
        f"{path}: testapp.novel(pk={dumped}): identity ['second'] names no testapp.book row,"
        " neither in the dump nor on the target; add testapp.book to the dataset."
    )
    assert rows("target") == before


def test_max_delete_counts_the_rows_matched_by_identity_as_kept(tmp_path):
    """Before anything is written, --max-delete counts what the delete_missing specs would
    delete: rows matched by identity stay, whatever their keys."""
    make_books()
    shift_keys()
    path = copy(tmp_path, f"books:{PRESS}")
    load(path, using="target")
    Book.objects.filter(slug="first").update(title="First, revised")
    path = copy(tmp_path, f"books:{PRESS}", "second.json")

    report = load(path, using="target", max_delete=DeleteLimit(rows=0))

    assert report.counts["testapp.book"].updated == 1
    assert report.counts["testapp.book"].deleted == 0
