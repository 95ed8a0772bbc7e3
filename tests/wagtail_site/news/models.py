"""A home page, and a news section of an index page with tagged news pages."""

from __future__ import annotations

from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from taggit.models import TaggedItemBase
from wagtail.models import Page


class HomePage(Page):
    pass


class NewsIndexPage(Page):
    intro = models.TextField(blank=True)


class NewsPageTag(TaggedItemBase):
    content_object = ParentalKey(
        "news.NewsPage", related_name="tagged_items", on_delete=models.CASCADE
    )

    class Meta:
        # A page has each tag once; the constraint lets the sync match tag links by it.
        constraints = [
            models.UniqueConstraint(fields=["content_object", "tag"], name="news_page_tag_once")
        ]


class NewsPage(Page):
    body = models.TextField(blank=True)
    tags = ClusterTaggableManager(through=NewsPageTag, blank=True)
