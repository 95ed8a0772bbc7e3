"""Signals a load sends.

``load_committed`` is sent once a load's transaction has committed (not after a dry run or a
failed load), with ``sender=LoadReport``, ``using`` (the database alias) and ``report`` (the
:class:`~dataset_sync.LoadReport`). Receivers run outside the load's transaction: for work
that must happen only once the rows are there for good (clearing a cache, updating a search
index). Work that must be part of the load's transaction belongs in a dataset's
``after_write`` hooks.
"""

from __future__ import annotations

from django.dispatch import Signal

load_committed = Signal()
