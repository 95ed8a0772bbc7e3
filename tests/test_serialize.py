from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch

from dataset_sync.dump.serialize import RowSerializer
from dataset_sync.encoding import ExactJSONEncoder, encode_exactly
from testapp.models import (
    Article,
    Author,
    Choice,
    Comment,
    Event,
    Node,
    Question,
    Reading,
    Tag,
)

pytestmark = pytest.mark.django_db


def django_serializer_lines(model):
    """What Django's own serializer writes for every row of ``model``, ordered by pk."""
    queryset = model._base_manager.order_by("pk").prefetch_related(
        *(
            Prefetch(field.name, field.related_model._base_manager.order_by("pk"))
            for field in model._meta.local_many_to_many
            if field.remote_field.through._meta.auto_created
        )
    )
    objects = serializers.serialize("python", queryset, use_natural_foreign_keys=True)
    return [encode_exactly(obj) for obj in objects]


def test_row_serializer_matches_djangos_serializer_byte_for_byte():
    tags = [Tag.objects.create(name=name) for name in ("b", "a", "ü")]
    author = Author.objects.create(name='Zoë "quoted"', email="z@example.com")
    question = Question.objects.create(
        author=author,
        text="Line\nbreak",
        pub_date=dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
    )
    question.tags.set(tags)
    Question.objects.create(
        author=author, text="untagged", pub_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    )
    Choice.objects.create(question=question, text="c", votes=-3, score=Decimal("12.30"))
    root = Node.objects.create(
        name="root", data={"list": [1, 2.5, None], "uuid": str(uuid.uuid4())}
    )
    Node.objects.create(name="child", parent=root, data=[])
    Article.objects.create(title="article", body="text")
    Event.objects.create(title="event", starts=dt.date(2026, 12, 24))
    Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Node), object_id=root.pk, text="on a node"
    )
    Reading.objects.create(
        taken=dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
        time_of_day=dt.time(23, 59, 59, 999999),
        value=Decimal("0.0000001"),
        lasted=dt.timedelta(microseconds=1),
    )

    for model in apps.get_app_config("testapp").get_models():
        ours = [
            encode_exactly(obj)
            for obj in RowSerializer(model, "default").rows(
                model._base_manager.order_by("pk"), batch_size=2
            )
        ]
        assert ours == django_serializer_lines(model), model


def test_row_serializer_writes_each_row_once_when_a_filter_repeats_it():
    tags = [Tag.objects.create(name=name) for name in ("x", "y", "z")]
    author = Author.objects.create(name="a", email="a@example.com")
    question = Question.objects.create(
        author=author, text="q", pub_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    )
    question.tags.set(tags)
    # Joining the tags repeats the question once per tag.
    queryset = Question.objects.filter(tags__in=tags).order_by("pk")
    assert queryset.count() == 3
    rows = list(RowSerializer(Question, "default").rows(queryset, batch_size=2))
    assert [row["pk"] for row in rows] == [question.pk]


def test_dump_lines_differ_from_djangos_json_only_where_it_drops_digits():
    """On purpose, since format version 2: Django's JSON serializer (dumpdata, feincms3-data)
    cuts datetimes and times to the millisecond and writes small decimals with an exponent.
    Every other value is written as it writes it."""
    author = Author.objects.create(name="Zoë", email="z@example.com")
    Question.objects.create(
        author=author,
        text="to the millisecond",
        pub_date=dt.datetime(2026, 5, 6, 7, 8, 9, 123000, tzinfo=dt.timezone.utc),
    )
    Reading.objects.create(
        taken=dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
        time_of_day=dt.time(23, 59, 59, 999999),
        value=Decimal("0.0000001"),
        lasted=dt.timedelta(microseconds=1),
    )
    Reading.objects.create(
        taken=dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
        time_of_day=dt.time(12, 0),
        value=Decimal("12.5000000"),
        lasted=dt.timedelta(0),
    )

    def ours(model):
        lines = RowSerializer(model, "default").rows(model.objects.order_by("pk"), batch_size=10)
        return [json.loads(encode_exactly(obj)) for obj in lines]

    def djangos(model):
        queryset = model.objects.order_by("pk")
        return json.loads(serializers.serialize("json", queryset, use_natural_foreign_keys=True))

    assert ours(Author) == djangos(Author)
    assert ours(Question) == djangos(Question)
    assert [obj["fields"] for obj in ours(Reading)] == [
        {
            "taken": "2026-05-06T07:08:09.123456Z",
            "time_of_day": "23:59:59.999999",
            "value": "0.0000001",
            "lasted": "00:00:00.000001",
        },
        {
            "taken": "2026-05-06T07:08:09Z",
            "time_of_day": "12:00:00",
            "value": "12.5000000",
            "lasted": "00:00:00",
        },
    ]
    assert [obj["fields"] for obj in djangos(Reading)] == [
        {
            "taken": "2026-05-06T07:08:09.123Z",
            "time_of_day": "23:59:59.999",
            "value": "1E-7",
            "lasted": "00:00:00.000001",
        },
        {
            "taken": "2026-05-06T07:08:09Z",
            "time_of_day": "12:00:00",
            "value": "12.5000000",
            "lasted": "00:00:00",
        },
    ]


def test_aware_times_are_refused_as_django_refuses_them():
    """A time with a zone has no meaning without a date; Django's encoder refuses it too."""
    with pytest.raises(ValueError) as excinfo:
        ExactJSONEncoder().encode(dt.time(12, 0, tzinfo=dt.timezone.utc))
    assert str(excinfo.value) == "JSON can't represent timezone-aware times."


def test_naive_datetimes_are_written_without_a_zone():
    """With USE_TZ = False, datetimes are naive, and written as such."""
    value = dt.datetime(2026, 5, 6, 7, 8, 9, 10)
    assert ExactJSONEncoder().encode([value]) == '["2026-05-06T07:08:09.000010"]'
    offset = dt.timezone(dt.timedelta(hours=2))
    assert ExactJSONEncoder().encode([value.replace(tzinfo=offset)]) == (
        '["2026-05-06T07:08:09.000010+02:00"]'
    )


PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 5, 6, 7, 8, 9, 120000, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 5, 6, 7, 8, 9, 1000, tzinfo=PLUS_TWO),
        dt.datetime(2026, 5, 6, 7, 8, 9, 999000),
        dt.time(7, 8, 9),
        dt.time(7, 8, 9, 500000),
        dt.date(2026, 5, 6),
        dt.timedelta(days=-1, microseconds=7),
        Decimal("1.50"),
        Decimal("-12345678.1234567"),
        Decimal("0.000001"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ],
    ids=repr,
)
def test_values_django_writes_exactly_are_written_as_django_writes_them(value):
    assert ExactJSONEncoder().encode([value]) == DjangoJSONEncoder().encode([value])
