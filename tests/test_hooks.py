"""A dataset's after_write hooks, and the signal a committed load sends."""

from __future__ import annotations

import pytest
from django.db import transaction

from dataset_sync import LoadReport, Spec, load
from dataset_sync.errors import LoadIntegrityError
from dataset_sync.signals import load_committed
from testapp.models import Node, Tag

from .conftest import copy, rows

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.fixture
def committed():
    """What load_committed receivers got, in order."""
    received = []

    def receiver(sender, using, report, **kwargs):
        received.append((sender, using, report))

    load_committed.connect(receiver)
    yield received
    load_committed.disconnect(receiver)


def count_children(*, using, **kwargs):
    """Like treebeard's numchild: a denormalised count outside the rows of the dump."""
    for node in Node.objects.using(using).all():
        node.data = {"children": Node.objects.using(using).filter(parent=node).count()}
        node.save(using=using, update_fields=["data"])


def test_hooks_run_in_the_loads_transaction_after_the_rows_are_written(
    tmp_path, restore_registry, committed
):
    calls = []

    def record(*, using, dataset, args, report, **kwargs):
        # The rows are there, and the transaction is still open.
        calls.append((using, dataset, args, Tag.objects.using(using).count(), report.changed))
        assert transaction.get_connection(using).in_atomic_block

    restore_registry("tags", after_write=[record])(lambda args: [Spec("testapp.tag")])
    Tag.objects.create(name="python")

    report = load(copy(tmp_path, "tags:x"), using="target")

    assert calls == [("target", "tags", "x", 1, True)]
    assert committed == [(LoadReport, "target", report)]


def test_a_hook_repairs_denormalised_data_before_the_checks(tmp_path, restore_registry):
    restore_registry("nodes", after_write=[count_children])(
        lambda args: [Spec("testapp.node", delete_missing=True)]
    )
    root = Node.objects.create(name="root")
    Node.objects.create(name="child", parent=root)
    path = copy(tmp_path, "nodes")

    load(path, using="target")

    counts = dict(Node.objects.using("target").values_list("name", "data"))
    assert counts == {"root": {"children": 1}, "child": {"children": 0}}


def test_a_failing_hook_leaves_the_target_as_it_was(tmp_path, restore_registry, committed):
    def refuse(**kwargs):
        raise LoadIntegrityError("the page tree is inconsistent.")

    restore_registry("tags", after_write=[refuse])(lambda args: [Spec("testapp.tag")])
    Tag.objects.create(name="python")
    path = copy(tmp_path, "tags")
    before = rows("target")

    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target")

    assert str(excinfo.value) == f"{path}: the page tree is inconsistent."
    assert rows("target") == before
    assert committed == []


def test_a_dry_run_runs_the_hooks_and_sends_no_signal(tmp_path, restore_registry, committed):
    calls = []
    restore_registry("tags", after_write=[lambda **kwargs: calls.append(kwargs["using"])])(
        lambda args: [Spec("testapp.tag")]
    )
    Tag.objects.create(name="python")
    before = rows("target")

    load(copy(tmp_path, "tags"), using="target", dry_run=True)

    assert calls == ["target"]
    assert committed == []
    assert rows("target") == before


def test_the_signal_waits_for_the_callers_transaction(tmp_path, committed):
    Tag.objects.create(name="python")
    path = copy(tmp_path, "authors:1")
    with transaction.atomic(using="target"):
        load(path, using="target")
        assert committed == []
    assert [using for _sender, using, _report in committed] == ["target"]
