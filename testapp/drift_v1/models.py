"""The drift app before its second migration."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Maker(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Gadget(models.Model):
    name = models.CharField(max_length=50)
    maker = models.ForeignKey(Maker, models.PROTECT, null=True, blank=True)
    weight = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class Part(models.Model):
    label = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.label


class Widget(models.Model):
    name = models.CharField(max_length=50)
    maker = models.ForeignKey(Maker, models.SET_NULL, null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Sticker(models.Model):
    """Names a widget twice: by foreign key, and by content type (a generic foreign key)."""

    text = models.CharField(max_length=50)
    widget = models.ForeignKey(Widget, models.CASCADE, null=True, blank=True)
    content_type = models.ForeignKey(ContentType, models.CASCADE, null=True, blank=True)
    object_id = models.PositiveIntegerField(null=True, blank=True)
    target = GenericForeignKey("content_type", "object_id")

    def __str__(self) -> str:
        return self.text
