"""The benchmark: dataset_sync against dumpdata/loaddata, feincms3-data and raw SQL."""

from __future__ import annotations
