"""The datasets of the test app, declared the way a project would declare its own."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dataset_sync import Spec, register, rules, specs_for_app_models, specs_for_derived_models
from testapp.models import Item, Page


def _ids(args: str) -> list[int]:
    if not args:
        raise ValueError("expected comma separated author ids, e.g. authors:1,2")
    return [int(part) for part in args.split(",")]


@register("authors")
def authors(args: str) -> list[Spec]:
    """Some authors with everything they wrote; their stale questions and choices go.

    Specs are listed children first on purpose: the load order comes from the relations.
    """
    ids = _ids(args)
    return [
        Spec("testapp.choice", filter={"question__author__in": ids}, delete_missing=True),
        Spec("testapp.review", filter={"question__author__in": ids}, delete_missing=True),
        Spec("testapp.question", filter={"author__in": ids}, delete_missing=True),
        Spec("testapp.author", filter={"pk__in": ids}),
        Spec("testapp.tag"),
        Spec("testapp.category"),
    ]


@register("questions")
def questions(args: str) -> list[dict[str, object]]:
    """Questions by id, declared as feincms3-data style dicts."""
    ids = _ids(args)
    return [
        {"model": "testapp.author", "filter": {"questions__in": ids}},
        {"model": "testapp.category"},
        {"model": "testapp.tag"},
        {"model": "testapp.question", "filter": {"pk__in": ids}},
        {"model": "testapp.choice", "filter": {"question__in": ids}, "delete_missing": True},
    ]


@register("tree")
def tree(args: str) -> list[Spec]:
    """A self-referencing tree, replaced as a whole."""
    return [Spec("testapp.node", delete_missing=True)]


@register("items")
def items(args: str) -> list[Spec]:
    """A multi-table inheritance hierarchy: the parents, then every concrete child."""
    return [
        Spec("testapp.item", delete_missing=True),
        *specs_for_derived_models(Item, {"delete_missing": True}),
    ]


@register("comments")
def comments(args: str) -> list[Spec]:
    """Generic foreign keys; content types are matched by natural key."""
    return [Spec("testapp.comment", delete_missing=True)]


@register("books")
def books(args: str) -> list[Spec]:
    """The books of some publishers, named by UUID; the stale ones go.

    Publishers and books are matched by identity (DATASET_SYNC_IDENTITIES in the settings),
    so their keys may differ between databases.
    """
    if not args:
        raise ValueError("expected comma separated publisher UUIDs")
    uuids = args.split(",")
    return [
        Spec("testapp.publisher", filter={"uuid__in": uuids}),
        Spec("testapp.book", filter={"publisher__uuid__in": uuids}, delete_missing=True),
        Spec("testapp.novel", filter={"publisher__uuid__in": uuids}, delete_missing=True),
        Spec("testapp.tag"),
    ]


@register("everything")
def everything(args: str) -> list[Spec]:
    """Every model of the test app, stale rows deleted."""
    return specs_for_app_models("testapp", {"delete_missing": True})


@register(
    "people",
    rules={
        "testapp.person.name": rules.fake("name"),
        "testapp.person.email": rules.unique_email(),
        # unique_phone() would be longer than the field with a UUID key.
        "testapp.person.phone": rules.hashed(),
        "testapp.person.nickname": rules.fake("first_name"),
        "testapp.person.bio": rules.fake("text"),
        "testapp.person.ip": rules.null(),
        "testapp.person.preferences": rules.fixed({}),
        "testapp.person.avatar": rules.blank(),
        "testapp.person.born": rules.fake("date_of_birth"),
    },
)
def people(args: str) -> list[Spec]:
    """People, with a data rule for every personal field; their status is kept as it is."""
    return [Spec("testapp.person", delete_missing=True)]


@register("section")
def section(args: str, using: str = DEFAULT_DB_ALIAS) -> list[Spec]:
    """A section with its pages and their revisions; the stale pages and revisions go.

    Revisions name their page by a generic foreign key, so they are selected by the ids of
    the section's pages as the database ``using`` holds them: the filter differs between
    source and target whenever their pages do.
    """
    section_id = int(args)
    pages = list(Page.objects.using(using).filter(section=section_id).values_list("pk", flat=True))
    return [
        Spec("testapp.section", filter={"pk": section_id}),
        Spec("testapp.page", filter={"section": section_id}, delete_missing=True),
        Spec(
            "testapp.revision",
            filter={
                "content_type__app_label": "testapp",
                "content_type__model": "page",
                "object_id__in": pages,
            },
            delete_missing=True,
        ),
    ]
