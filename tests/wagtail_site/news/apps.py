from __future__ import annotations

from django.apps import AppConfig


class NewsConfig(AppConfig):
    name = "tests.wagtail_site.news"
    label = "news"
