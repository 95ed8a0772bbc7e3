"""The raw-SQL floor: the dataset's rows written with executemany in one transaction.

    DJANGO_SETTINGS_MODULE=bench.settings python bench/raw.py ROWS.pickle

``ROWS.pickle`` holds the rows already converted to database values, table by table, so
this measures little beyond writing them: in one transaction, the dataset's tables on the
``target`` database are emptied and every row is inserted again. That is the least any
loader has to do to bring a database to the dump's state without comparing anything.
The benchmark also uses these functions to generate data, empty and restore databases.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()

from django.db import connections, models, transaction

#: Columns and rows (database values) per table, parents first.
Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def dataset_models() -> list[type[models.Model]]:
    """The tables of the benchmark dataset, parents first; the m2m table comes last."""
    from testapp.models import Author, Choice, Question, Tag

    return [Author, Tag, Question, Choice, Question.tags.through]


def columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The fields written per row; an auto-created m2m table is written without its id."""
    fields = list(model._meta.concrete_fields)
    if model._meta.auto_created:
        fields = [field for field in fields if not field.primary_key]
    return fields


def extract(using: str) -> Rows:
    """Every row of the dataset on ``using``, as database values."""
    connection = connections[using]
    rows: Rows = {}
    for model in dataset_models():
        fields = columns(model)
        queryset = (
            model._base_manager.using(using)
            .order_by(*(field.attname for field in fields))
            .values_list(*(field.attname for field in fields))
        )
        rows[model._meta.db_table] = (
            [str(field.column) for field in fields],
            [
                tuple(
                    field.get_db_prep_save(value, connection)
                    for field, value in zip(fields, row, strict=True)
                )
                for row in queryset.iterator(chunk_size=10_000)
            ],
        )
    return rows


def delete_all(using: str) -> None:
    """Empty the dataset's tables, children first."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for model in reversed(dataset_models()):
            cursor.execute(f"DELETE FROM {quote(model._meta.db_table)}")


def insert(using: str, rows: Rows) -> None:
    """Insert ``rows`` table by table, one executemany per table."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for table, (names, values) in rows.items():
            if not values:
                continue
            cursor.executemany(
                f"INSERT INTO {quote(table)} ({', '.join(quote(name) for name in names)})"
                f" VALUES ({', '.join(['%s'] * len(names))})",
                values,
            )


def replace(using: str, rows: Rows) -> None:
    """Make the dataset on ``using`` exactly ``rows``, in one transaction."""
    with transaction.atomic(using=using):
        delete_all(using)
        insert(using, rows)


def main(argv: list[str]) -> int:
    (path,) = argv
    with open(path, "rb") as stream:
        rows: Rows = pickle.load(stream)
    replace("target", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
