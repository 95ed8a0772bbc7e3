from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.db.models import Prefetch

from dataset_sync.dump.serialize import RowSerializer
from dataset_sync.format import encode_object
from testapp.models import Article, Author, Choice, Comment, Event, Node, Question, Tag

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
    return [encode_object(obj) for obj in objects]


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

    for model in apps.get_app_config("testapp").get_models():
        ours = [
            encode_object(obj)
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
