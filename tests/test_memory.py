"""Memory: a dump stays flat however many rows it writes, and a load grows only by the keys.

Measured with tracemalloc (Python's own allocations, which is where per-row objects would
pile up), never with a timer: the peak while dumping and loading N rows is compared with the
peak for 10·N rows of the same shape.
"""

from __future__ import annotations

import gc
import tracemalloc
from decimal import Decimal

import pytest
from django.db import connections, models

from dataset_sync import Spec, dump, load
from testapp.models import Author, Choice, Question

from .conftest import WHEN

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

#: Two batches of the default DATASET_SYNC_BATCH_SIZE (1000), and then twenty.
N = 2000


def peak(function, *args, **kwargs):
    """The most memory Python held at once for allocations made during the call, in bytes."""
    gc.collect()  # garbage of an earlier step must not be freed, or counted, inside this one
    tracemalloc.start()
    try:
        function(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dump_and_load_memory_does_not_grow_with_the_rows(tmp_path, restore_registry):
    restore_registry("choices")(
        lambda args: [
            Spec("testapp.author"),
            Spec("testapp.question"),
            Spec("testapp.choice", delete_missing=True),
        ]
    )
    author = Author.objects.create(name="author", email="author@example.com")
    question = Question.objects.create(author=author, text="question", pub_date=WHEN)
    peaks = {}
    # The first round fills Django's and the package's caches; the second, of as many rows,
    # replaces its peaks.
    for round_, count in enumerate((N, N, 10 * N)):
        for alias in ("default", "target"):
            Choice.objects.using(alias).all().delete()
        Choice.objects.bulk_create(
            Choice(question=question, text=f"choice {i}", votes=i, score=Decimal("1.25"))
            for i in range(count)
        )
        path = tmp_path / f"dump-{round_}.json"
        peaks[count] = {"dump": peak(dump, "choices", output=path)}
        peaks[count]["load"] = peak(load, path, using="target")
        assert Choice.objects.using("target").count() == count

    small, large = peaks[N], peaks[10 * N]
    extra = {step: (large[step] - small[step]) // (9 * N) for step in small}
    # A dump holds one batch of rows at a time, so ten times the rows must not raise its peak
    # by half: keeping as little as an int per row (36 bytes) would add 650 kB to its 400 to
    # 500 kB. Measured: a few percent, about 1 byte per extra row.
    assert large["dump"] < 1.5 * small["dump"], (peaks, extra)
    # A load holds a batch too, and the primary keys of the dump (README: about 135 MB for a
    # million objects), so its peak grows by about 100 bytes a row: 1.9 MB at N rows becomes
    # 3.6 MB (4.3 MB on MariaDB) at 10·N, where keeping a row's values (500 bytes and more)
    # would make it 12 MB or more. Three times is far below ten, and above what the keys cost.
    assert large["load"] < 3 * small["load"], (peaks, extra)


@pytest.mark.skipif(
    connections["default"].vendor != "sqlite",
    reason="Python's memory is the same on every database; a server makes it 25 s",
)
def test_an_identity_load_with_self_references_does_not_hold_its_rows(tmp_path):
    """Books matched by slug, each pointing at the book before it (a self reference by
    identity), into a target that has none of them: every reference names a row not written
    when its holder is, and must not keep the holder's row until the end of the load."""
    from testapp.models import Book, Publisher

    from .test_identity import PRESS

    peaks = {}
    for round_, count in enumerate((N, N, 10 * N)):
        for alias in ("default", "target"):
            Book.objects.using(alias).all().delete()
            Publisher.objects.using(alias).all().delete()
        press = Publisher.objects.create(uuid=PRESS, name="Press")
        Book.objects.bulk_create(
            Book(pk=i, slug=f"book-{i}", title="A title of some length", publisher=press)
            for i in range(1, count + 1)
        )
        Book.objects.filter(pk__gt=1).update(sequel_id=models.F("pk") - 1)
        path = tmp_path / f"books-{round_}.json"
        dump(f"books:{PRESS}", output=path)
        peaks[count] = peak(load, path, using="target")
        last = Book.objects.using("target").get(slug=f"book-{count}")
        assert last.sequel.slug == f"book-{count - 1}"

    # Holding each row (its values, links and spooled object: 1 kB and more) until the end
    # grows the peak eightfold: 4.9 MB at N rows, 39.7 MB at 10·N, before this was fixed.
    # What may grow is the keys of the books written.
    assert peaks[10 * N] < 3 * peaks[N], peaks
