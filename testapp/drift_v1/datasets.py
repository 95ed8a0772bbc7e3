"""The drift app's datasets before 0002_ahead; drift_v2 declares them after it."""

from __future__ import annotations

from dataset_sync import Spec, register


@register("gadgets")
def gadgets(args: str) -> list[Spec]:
    return [Spec("drift.gadget", delete_missing=True)]


@register("makers")
def makers(args: str) -> list[Spec]:
    return [Spec("drift.maker")]


@register("parts")
def parts(args: str) -> list[Spec]:
    return [Spec("drift.part", filter={"label__isnull": False})]


@register("widgets")
def widgets(args: str) -> list[Spec]:
    return [
        Spec("drift.widget", filter={"name__isnull": False}, delete_missing=True),
        Spec("drift.sticker", filter={"widget__name__isnull": False}, delete_missing=True),
    ]
