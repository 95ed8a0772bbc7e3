"""The drift app's datasets after 0002_ahead: drift_v1's with the renamed model's and fields'
new names, and one of the model this state adds."""

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
    return [Spec("drift.part", filter={"title__isnull": False})]


@register("widgets")
def widgets(args: str) -> list[Spec]:
    # Widget is Component since 0002_ahead, and its name title.
    return [
        Spec("drift.component", filter={"title__isnull": False}, delete_missing=True),
        Spec("drift.sticker", filter={"widget__title__isnull": False}, delete_missing=True),
    ]


@register("accessories")
def accessories(args: str) -> list[Spec]:
    return [Spec("drift.accessory")]
