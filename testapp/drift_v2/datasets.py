"""The drift app's datasets: drift_v1's, and one of the model this state adds."""

from __future__ import annotations

import testapp.drift_v1.datasets  # noqa: F401 - the datasets both states declare
from dataset_sync import Spec, register


@register("accessories")
def accessories(args: str) -> list[Spec]:
    return [Spec("drift.accessory")]
