"""The drift app before its second migration."""

from __future__ import annotations

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
