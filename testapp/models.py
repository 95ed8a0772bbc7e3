"""Models for the hard cases of moving a dataset: chains, cycles, trees, m2m, MTI, generic FKs."""

from __future__ import annotations

import secrets
import uuid

import django
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

#: CheckConstraint's argument: "check" until Django 5.1 named it "condition".
CHECK = "condition" if django.VERSION >= (5, 1) else "check"


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Keyword(Tag):
    """A proxy: its rows are the tags' rows."""

    class Meta:
        proxy = True


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    # Author -> Question -> Author closes a foreign key cycle.
    favorite_question = models.ForeignKey(
        "Question", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return self.name


class Question(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="questions")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, null=True, blank=True)
    text = models.CharField(max_length=200)
    pub_date = models.DateTimeField()
    tags = models.ManyToManyField(Tag, blank=True, related_name="questions")
    reviewers = models.ManyToManyField(Author, through="Review", related_name="reviewed")

    def __str__(self) -> str:
        return self.text


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="choices")
    text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)
    score = models.DecimalField(max_digits=6, decimal_places=2, default=0)

    def __str__(self) -> str:
        return self.text


class Review(models.Model):
    """An explicit through model with its own primary key and unique_together."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    rating = models.PositiveSmallIntegerField()

    class Meta:
        unique_together = [("question", "author")]

    def __str__(self) -> str:
        return f"{self.author} on {self.question}: {self.rating}"


class Node(models.Model):
    """A tree: a nullable self reference, and links between nodes."""

    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True)
    name = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True)
    # Many-to-many links between nodes: to rows of a model saved as new, in any order.
    see_also = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="+")

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """The parent of a multi-table inheritance hierarchy."""

    title = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.title


class Article(Item):
    body = models.TextField()


class Event(Item):
    starts = models.DateField()


class Comment(models.Model):
    """A generic foreign key: content type ids differ between databases."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    text = models.TextField()

    def __str__(self) -> str:
        return self.text


class Person(models.Model):
    """Personal data for the data rules: a UUID key, unique and nullable text, IP, JSON, files,
    and a user account, which a dump names by its natural key (the username)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    phone = models.CharField(max_length=30, null=True, blank=True, unique=True)
    # Nullable on purpose: rules must keep NULL as NULL.
    nickname = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    bio = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    preferences = models.JSONField(default=dict, blank=True)
    avatar = models.FileField(blank=True)
    born = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=[("active", "active"), ("left", "left")], default="active"
    )

    def __str__(self) -> str:
        return self.name


def random_key() -> int:
    """A random key, as some datastores hand out: two databases' keys never line up."""
    return secrets.randbelow(2**53 - 1) + 1


class Publisher(models.Model):
    """Identified by a UUID field; its primary keys are random."""

    id = models.BigIntegerField(primary_key=True, default=random_key, editable=False)
    uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    """Identified by its slug: rows created on either side get keys that collide."""

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="books")
    # A self reference, and links between books, by identity.
    sequel = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    see_also = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="+")
    # References to models matched by primary key.
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")
    editor = models.ForeignKey(
        Author, on_delete=models.SET_NULL, null=True, blank=True, related_name="edited"
    )
    # As Wagtail's page points at its latest revision, which names the page by a generic
    # foreign key: a cycle through a reference that can wait.
    latest_comment = models.ForeignKey(
        "Comment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return self.title


class Novel(Book):
    """A multi-table inheritance child: identified as its book."""

    genre = models.CharField(max_length=50)


class Reading(models.Model):
    """Values that need every digit: Django's JSON encoder cuts the microseconds of datetimes
    and times, and writes small decimals with an exponent."""

    taken = models.DateTimeField()
    time_of_day = models.TimeField()
    # Fifteen digits: SQLite keeps decimals as floats, which hold no more.
    value = models.DecimalField(max_digits=15, decimal_places=7)
    lasted = models.DurationField()

    def __str__(self) -> str:
        return f"{self.value} at {self.taken}"


class Section(models.Model):
    """A part of a site: its pages, and their revisions, move together (dataset "section")."""

    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Page(models.Model):
    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="pages")
    title = models.CharField(max_length=100)
    # Deleting a page deletes its revisions, as a foreign key's CASCADE would.
    revisions = GenericRelation("Revision")

    class Meta:
        # A constraint only the database knows: the loader cannot check it before writing.
        constraints = [
            models.CheckConstraint(
                **{CHECK: ~models.Q(title="")},  # type: ignore[arg-type]
                name="testapp_page_title_not_empty",
            )
        ]

    def __str__(self) -> str:
        return self.title


class Revision(models.Model):
    """A revision of any object, named by a generic foreign key, as versioning apps keep them:
    a dataset selects a section's revisions by the ids of its pages, which it reads from the
    database it is evaluated on."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    number = models.PositiveIntegerField()
    # SET_DEFAULT and SET(): deleting the author changes the revision without deleting it.
    author = models.ForeignKey(
        Author, on_delete=models.SET_DEFAULT, default=None, null=True, blank=True, related_name="+"
    )
    reviewer = models.ForeignKey(
        Author, on_delete=models.SET(None), null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"revision {self.number} of {self.content_type_id}:{self.object_id}"


class Pin(models.Model):
    """A bookmark on a question that leaves its deletion to the database (DO_NOTHING): when a
    load deletes the question, a pin outside the dataset points nowhere, and only the
    database's foreign key check can tell."""

    question = models.ForeignKey(Question, on_delete=models.DO_NOTHING, related_name="+")
    note = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return self.note
