"""A small Wagtail site for tests/test_wagtail.py: the recipe of docs/wagtail.md, run for real.

It is not in testapp's INSTALLED_APPS, so the main suite never creates Wagtail's tables.
"""
