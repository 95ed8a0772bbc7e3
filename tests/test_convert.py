"""RowConverter: its shortcuts give exactly what Django's own field methods give."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connections

from dataset_sync.load.backends import backend
from dataset_sync.load.convert import RowConverter, from_db
from testapp.models import Author, Choice, Question, Tag

from .conftest import WHEN

pytestmark = pytest.mark.django_db(databases=["default", "target"])

#: JSON values of every shape a dump holds, and Python values of every type they convert to.
JSON_VALUES = [0, 1, -7, 2**40, "", "text", "12.30", "0", True, False, None, 1.5, [1, 2], {}]
PYTHON_VALUES = [
    *JSON_VALUES,
    Decimal("12.30"),
    Decimal("1"),
    dt.date(2026, 1, 2),
    WHEN,
    dt.datetime(2026, 1, 2, 3, 4, 5),
]


def same(left, right):
    return type(left) is type(right) and repr(left) == repr(right)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # naive datetimes, as Django warns
@pytest.mark.parametrize("alias", ["default", "target"])
def test_column_conversions_equal_the_fields_own(alias):
    connection = connections[alias]
    for model in apps.get_app_config("testapp").get_models():
        converter = RowConverter(model, connection, ignorenonexistent=False)
        for column in converter.columns:
            field = column.field
            for raw in JSON_VALUES:
                try:
                    expected = field.to_python(raw)
                except (ValidationError, TypeError, ValueError):
                    continue
                if raw is None or type(raw) is column.python_type:
                    assert same(raw, expected), (field, raw)
            for value in PYTHON_VALUES:
                try:
                    expected = field.get_db_prep_save(value, connection)
                except (ValidationError, TypeError, ValueError, AttributeError, ArithmeticError):
                    # ArithmeticError: Django 4.2 quantizes decimals to the field's digits.
                    continue
                assert same(column.db(value), expected), (field, value)


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_rows_read_back_as_values_list_reads_them():
    tag = Tag.objects.create(name="t")
    author = Author.objects.create(name="a", email="a@example.com")
    question = Question.objects.create(author=author, text="q", pub_date=WHEN)
    question.tags.add(tag)
    Choice.objects.create(question=question, text="c", votes=3, score=Decimal("12.30"))
    for model in (Tag, Question, Choice):
        connection = connections["default"]
        converter = RowConverter(model, connection, ignorenonexistent=False)
        pks = list(model.objects.values_list("pk", flat=True)) + [10**6]
        expected = {
            pk: values
            for pk, *values in model.objects.values_list("pk", *converter.attnames)
            for values in (tuple(values),)
        }
        columns = converter.columns
        fetched = backend(connection).select(
            model._meta.db_table, [c.column for c in columns], columns[0].column, pks
        )
        found = {values[0]: values[1:] for values in from_db(columns, fetched, connection)}
        assert found == expected
        for pk, values in found.items():
            assert [type(value) for value in values] == [type(value) for value in expected[pk]]
