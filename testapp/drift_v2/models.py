"""The drift app after its second migration (0002_ahead)."""

from __future__ import annotations

import django
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Maker(models.Model):
    name = models.CharField(max_length=50)
    #: NOT NULL without a default: the migration gave existing rows a value once.
    code = models.CharField(max_length=10)

    def __str__(self) -> str:
        return self.name


class Gadget(models.Model):
    name = models.CharField(max_length=50)
    maker = models.ForeignKey(Maker, models.PROTECT, null=True, blank=True)
    weight = models.IntegerField(default=0)
    colour = models.CharField(max_length=20, default="grey")
    # Django 4.2 has no db_default; there the field has a default like colour.
    if django.VERSION >= (5, 0):
        stock = models.IntegerField(db_default=7)
    else:
        stock = models.IntegerField(default=7)

    def __str__(self) -> str:
        return self.name


class Part(models.Model):
    #: Called label before 0002_ahead.
    title = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.title


class Accessory(models.Model):
    gadget = models.ForeignKey(Gadget, models.CASCADE)
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Component(models.Model):
    """Called Widget before 0002_ahead, and its title name."""

    title = models.CharField(max_length=50)
    maker = models.ForeignKey(Maker, models.SET_NULL, null=True, blank=True)

    def __str__(self) -> str:
        return self.title


class Sticker(models.Model):
    """Names a component twice: by foreign key, and by content type (a generic foreign key)."""

    text = models.CharField(max_length=50)
    #: Still called widget: renaming a model leaves the fields that point at it as they are.
    widget = models.ForeignKey(Component, models.CASCADE, null=True, blank=True)
    content_type = models.ForeignKey(ContentType, models.CASCADE, null=True, blank=True)
    object_id = models.PositiveIntegerField(null=True, blank=True)
    target = GenericForeignKey("content_type", "object_id")

    def __str__(self) -> str:
        return self.text
