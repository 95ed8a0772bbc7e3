"""The editors of tests/test_wagtail.py: each step edits this environment's pages the way an
editor would in Wagtail's admin (pages saved through Wagtail, revisions published), or prints
the state the test compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from wagtail.models import Locale, Page, Site

from tests.wagtail_site.news.models import HomePage, NewsIndexPage, NewsPage

SECTION = "/home/news/"


def page(url_path: str) -> Page:
    return Page.objects.get(url_path=url_path).specific


def publish(parent: Page, child: Page, user: User | None = None, **kwargs: Any) -> Page:
    child.owner = user
    parent.add_child(instance=child)
    for key, value in kwargs.items():
        getattr(child, key).add(*value) if key == "tags" else setattr(child, key, value)
    child.save_revision(user=user).publish()
    return child


def edit(url_path: str, user: User | None = None, **changes: Any) -> None:
    """Change a page and publish it, as an editor does."""
    item = page(url_path)
    for key, value in changes.items():
        if key == "tags":
            item.tags.set(value)
        else:
            setattr(item, key, value)
    item.save_revision(user=user).publish()


def create_database() -> None:
    """An empty database for this environment, dropped first if a run before left one."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        Path(name).unlink(missing_ok=True)
        return
    quoted = connection.ops.quote_name(name)
    # The server's collation for utf8mb4, which its connections compare text literals in too.
    options = " CHARACTER SET utf8mb4" if connection.vendor == "mysql" else ""
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        cursor.execute(f"CREATE DATABASE {quoted}{options}")


def drop_database() -> None:
    name = connection.settings_dict["NAME"]
    connection.close()
    if connection.vendor == "sqlite":
        Path(name).unlink(missing_ok=True)
        return
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)}")


def content_types() -> None:
    """Stage only, between migrating contenttypes and the rest: its content type ids differ."""
    for number in range(7):
        ContentType.objects.create(app_label="stage_only", model=f"thing{number}")


def home() -> None:
    """Both: Wagtail's welcome page replaced by a home page, the site's root."""
    Page.objects.get(depth=2).delete()  # its site goes with it
    root = Page.get_first_root_node()
    homepage = root.add_child(instance=HomePage(title="Home", slug="home"))
    Site.objects.create(hostname="localhost", root_page=homepage, is_default_site=True)


def prod_build() -> None:
    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")  # only on prod
    homepage = page("/home/")
    news = publish(homepage, NewsIndexPage(title="News", slug="news", intro="All the news."))
    publish(homepage, NewsIndexPage(title="Events", slug="events"))  # outside the section
    publish(
        news,
        NewsPage(title="Launch", slug="launch", body="We launched."),
        bob,
        tags=["launch", "product"],
    )
    publish(news, NewsPage(title="Hiring", slug="hiring", body="Join us."), alice, tags=["jobs"])
    archive = publish(news, NewsIndexPage(title="Archive", slug="archive"), alice)
    old = publish(archive, NewsIndexPage(title="2024", slug="2024"), alice)
    publish(
        old, NewsPage(title="Old news", slug="old-news", body="Long ago."), bob, tags=["product"]
    )
    publish(old, NewsPage(title="Older news", slug="older-news"), alice)


def stage_users() -> None:
    """Stage: its editors; alice is on prod too, under another id."""
    User.objects.create(username="carol")  # only on stage
    User.objects.create(username="alice")


def stage_early() -> None:
    """Stage, before the first sync: a page beside the section, at the section's position."""
    publish(page("/home/"), NewsIndexPage(title="Early", slug="early"))


def stage_early_gone() -> None:
    page("/home/early/").delete()


def stage_editors() -> None:
    """Stage: editors add pages of their own outside the section and inside it, and a draft;
    bob, who owns a page on prod, gets an account on stage too."""
    carol, alice = User.objects.get(username="carol"), User.objects.get(username="alice")
    User.objects.create(username="bob")
    homepage = page("/home/")
    about = publish(homepage, NewsIndexPage(title="About", slug="about"), carol)
    publish(about, NewsPage(title="Team", slug="team", body="Us."), carol, tags=["team", "product"])
    publish(page(SECTION), NewsPage(title="Stage test", slug="stage-test"), alice, tags=["draft"])
    launch = page(SECTION + "launch/")
    launch.title = "Launch, a draft on stage"
    launch.save_revision(user=carol)  # not published: a revision of stage's own


def prod_round2() -> None:
    """Prod: edits, a new page with a new tag, and a page moved to another parent."""
    alice = User.objects.get(username="alice")
    edit(SECTION + "launch/", alice, title="Launched", body="We launched, again.", tags=["product"])
    publish(
        page(SECTION), NewsPage(title="Funding", slug="funding"), alice, tags=["money", "product"]
    )
    page(SECTION + "hiring/").move(page(SECTION + "archive/2024/"), pos="last-child")


def prod_round3() -> None:
    """Prod: a page with children deleted, another page added under the section's root."""
    page(SECTION + "archive/").delete()
    publish(page(SECTION), NewsPage(title="Later", slug="later"), None, tags=["launch"])


def state() -> dict[str, Any]:
    """The section, and the pages outside it, as the test compares them."""

    def describe(item: Page) -> dict[str, Any]:
        specific = item.specific
        return {
            "key": str(item.translation_key),
            "type": type(specific).__name__,
            "title": item.title,
            "slug": item.slug,
            "path": item.path,
            "depth": item.depth,
            "numchild": item.numchild,
            "url_path": item.url_path,
            "live": item.live,
            "owner": item.owner.username if item.owner else None,
            "locale": item.locale.language_code,
            "body": getattr(specific, "body", None),
            "tags": sorted(specific.tags.names()) if hasattr(specific, "tags") else None,
            # What Wagtail's editor shows: the latest revision's content, else the page's own.
            "in_editor": specific.get_latest_revision_as_object().title,
        }

    pages = Page.objects.order_by("path")
    return {
        "section": [describe(item) for item in pages.filter(url_path__startswith=SECTION)],
        "outside": [
            {"pk": item.pk, **describe(item)}
            for item in pages.exclude(url_path__startswith=SECTION)
        ],
        "problems": [len(problem) for problem in Page.find_problems()],
        "revisions": sorted(
            (page.url_path, count) for page in pages if (count := page.revisions.count())
        ),
        "locales": list(Locale.objects.values_list("language_code", flat=True)),
        # Synced pages must not point at revisions, which stay in the database they were made in.
        "pointing_at_revisions": [
            item.url_path
            for item in pages.filter(url_path__startswith=SECTION)
            if item.latest_revision_id or item.live_revision_id
        ],
        "content_type_ids": {
            ct.app_label + "." + ct.model: ct.pk
            for ct in ContentType.objects.filter(app_label__in=["wagtailcore", "news"])
        },
    }


STEPS = {
    "create-database": create_database,
    "drop-database": drop_database,
    "content-types": content_types,
    "home": home,
    "prod-build": prod_build,
    "stage-users": stage_users,
    "stage-early": stage_early,
    "stage-early-gone": stage_early_gone,
    "stage-editors": stage_editors,
    "prod-round2": prod_round2,
    "prod-round3": prod_round3,
}


class Command(BaseCommand):
    help = "Edit this environment's pages as tests/test_wagtail.py needs, or print its state."
    # The database may not exist yet (create-database), so no check may need it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("step", choices=[*STEPS, "state"])

    def handle(self, *, step: str, **options: Any) -> None:
        if step == "state":
            self.stdout.write(json.dumps(state()))
        else:
            STEPS[step]()
