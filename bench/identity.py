"""The identity scenario's data: rows matched by a unique field, with keys the target allocates.

The same number of rows and links as the main dataset, as publishers (identified by a UUID,
with random keys), tags (by key, shared) and books (identified by their slug): a book per
question and per choice, the choices' books pointing at their question's book (a self
reference by identity), and the questions' books linked to two tags each. The target hands
out book keys far above the source's, so no key of a dumped book names the same book there.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

from django.db import connections, models, transaction

#: The identity dataset's name (bench/datasets.py).
NAME = "bench-identity"
#: Where the target's book keys start, above any key of the source's.
TARGET_KEYS_FROM = 100_000_000

Snapshot = dict[str, dict[Any, tuple[Any, ...]]]


def models_() -> list[type[models.Model]]:
    from testapp.models import Book, Publisher

    return [Publisher, Book, Book.tags.through]


def generate(questions: int, authors: int, tags: int, choices: int, per_question: int) -> None:
    """Fill the source with the identity dataset, in one transaction."""
    from testapp.models import Book, Publisher

    rng = random.Random(2027)
    using = "default"
    with transaction.atomic(using=using):
        publishers = [
            Publisher(
                id=rng.randrange(1, 2**53),
                uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
                name=f"P{i}",
            )
            for i in range(authors)
        ]
        Publisher._base_manager.using(using).bulk_create(publishers)

        def books() -> Iterator[Book]:
            key = 0
            for question in range(1, questions + 1):
                key += 1
                head = key
                yield Book(
                    id=head,
                    slug=f"q-{question}",
                    title=f"Question {question}",
                    publisher_id=publishers[question % authors].id,
                )
                for number in range(choices):
                    key += 1
                    yield Book(
                        id=key,
                        slug=f"q-{question}-c-{number}",
                        title=f"choice {number}",
                        publisher_id=publishers[question % authors].id,
                        sequel_id=head,
                    )

        manager = Book._base_manager.using(using)
        batch: list[Book] = []
        for book in books():
            batch.append(book)
            if len(batch) == 10_000:
                manager.bulk_create(batch)
                batch = []
        manager.bulk_create(batch)
        through = Book.tags.through
        links = [
            through(book_id=(question - 1) * (1 + choices) + 1, tag_id=tag)
            for question in range(1, questions + 1)
            for tag in rng.sample(range(1, tags + 1), per_question)
        ]
        through._base_manager.using(using).bulk_create(links, batch_size=10_000)


def empty_target() -> None:
    """Delete the identity dataset's rows on the target, and move its book keys far away."""
    from testapp.models import Book

    connection = connections["target"]
    quote = connection.ops.quote_name
    table = quote(Book._meta.db_table)
    with transaction.atomic(using="target"), connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # InnoDB checks a self reference (a book's sequel) row by row as it deletes.
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for model in reversed(models_()):
            cursor.execute(f"DELETE FROM {quote(model._meta.db_table)}")
        if connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                [Book._meta.db_table, TARGET_KEYS_FROM],
            )
        elif connection.vendor == "mysql":
            cursor.execute(f"ALTER TABLE {table} AUTO_INCREMENT = {TARGET_KEYS_FROM}")
        else:
            # SQLite's AUTOINCREMENT remembers the largest key ever used.
            cursor.execute(
                "UPDATE sqlite_sequence SET seq = %s WHERE name = %s",
                [TARGET_KEYS_FROM, Book._meta.db_table],
            )
            if not cursor.rowcount:
                cursor.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)",
                    [Book._meta.db_table, TARGET_KEYS_FROM],
                )


def snapshot(using: str) -> Snapshot:
    """The identity dataset on ``using``, keyed and linked by identity rather than by key."""
    from testapp.models import Book, Publisher

    publishers = dict(Publisher._base_manager.using(using).values_list("id", "uuid"))
    slugs = dict(Book._base_manager.using(using).values_list("id", "slug").iterator(10_000))
    tags: dict[Any, list[Any]] = {}
    through = Book.tags.through._base_manager.using(using)
    for book_id, tag_id in through.values_list("book_id", "tag_id").iterator(10_000):
        tags.setdefault(slugs[book_id], []).append(tag_id)
    return {
        "publishers": {
            uuid_: (name,)
            for uuid_, name in Publisher._base_manager.using(using).values_list("uuid", "name")
        },
        "books": {
            slug: (title, publishers[publisher], slugs.get(sequel), sorted(tags.get(slug, [])))
            for slug, title, publisher, sequel in Book._base_manager.using(using)
            .values_list("slug", "title", "publisher_id", "sequel_id")
            .iterator(10_000)
        },
    }


def disjoint() -> bool:
    """Whether no book key of the target is a book key of the source."""
    from testapp.models import Book

    source = set(Book._base_manager.using("default").values_list("id", flat=True))
    target = set(Book._base_manager.using("target").values_list("id", flat=True))
    return bool(target) and source.isdisjoint(target)
