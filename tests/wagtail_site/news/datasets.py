"""The dataset of docs/wagtail.md, exactly as the page shows it."""

from __future__ import annotations

from typing import Any

from wagtail.models import Page

from dataset_sync import Spec, register, rules, specs_for_derived_models


def fix_parent_numchild(*, using: str, args: str, **kwargs: Any) -> None:
    """Count again the children of the page above the section, which the dump does not hold."""
    parent_url = args.rstrip("/").rpartition("/")[0] + "/"
    parent = Page.objects.using(using).filter(url_path=parent_url).first()
    if parent is None:
        return
    pages = Page.objects.using(using)
    count = pages.filter(path__startswith=parent.path, depth=parent.depth + 1).count()
    # Written only when it differs, so loading the same dump again writes nothing.
    pages.filter(pk=parent.pk).exclude(numchild=count).update(numchild=count)


@register(
    "wagtail-section",
    after_write=[fix_parent_numchild],
    rules={
        # Revisions stay where they were made: a page never points at another database's.
        "wagtailcore.page.latest_revision": rules.null(),
        "wagtailcore.page.live_revision": rules.null(),
    },
)
def wagtail_section(args: str) -> list[Spec]:
    """The pages under the url_path ``args`` ("/home/news/"), the section's root included."""
    # A page that prod deleted goes on stage with its stage revisions, which Wagtail deletes
    # along with a page; any other row outside the dataset it would take refuses the load.
    pages = {
        "filter": {"url_path__startswith": args},
        "delete_missing": True,
        "allow_cascade": ["wagtailcore.revision"],
    }
    return [
        Spec(
            "wagtailcore.page",
            **pages,
            missing_references={"owner": "set_null", "locked_by": "set_null"},
            # A tree position that only deleting stage's own page in the section frees.
            defer_values=["path"],
        ),
        *specs_for_derived_models(Page, pages),
        Spec(
            "news.newspagetag",
            filter={"content_object__url_path__startswith": args},
            delete_missing=True,
        ),
        # Every tag, since a tag is shared: stage's own pages may use one the section uses.
        Spec("taggit.tag"),
    ]
