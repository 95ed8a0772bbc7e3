"""Signatures over a dump's header and digest, with Django's HMAC helpers.

The trailer's ``sha256`` already covers every object line, so signing the header's fields
together with the trailer's count and digest signs the whole content. The key never appears
in the dump: only the HMAC does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "dataset_sync.dump"
#: The header and trailer fields a signature covers; others are informational.
SIGNED_HEADER = (
    "format",
    "version",
    "dataset",
    "args",
    "specs",
    "rules",
    "identities",
    "schema",
    "vendor",
    "created",
)
SIGNED_TRAILER = ("count", "spec_counts", "sha256")
#: Header fields signed only when present, so that dumps written before they existed keep
#: their signatures; removing or adding one still breaks the signature.
_SIGNED_WHEN_PRESENT = frozenset({"rules", "identities", "schema"})


def _message(header: Mapping[str, Any], trailer: Mapping[str, Any]) -> str:
    content = {
        "header": {
            key: header.get(key)
            for key in SIGNED_HEADER
            if key in header or key not in _SIGNED_WHEN_PRESENT
        },
        "trailer": {key: trailer.get(key) for key in SIGNED_TRAILER},
    }
    # Sorted keys and one encoder make the message independent of the file's layout.
    return json.dumps(content, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)


def sign(header: Mapping[str, Any], trailer: Mapping[str, Any], key: str) -> str:
    """The signature of a dump with this header and trailer."""
    return salted_hmac(_SALT, _message(header, trailer), secret=key, algorithm="sha256").hexdigest()


def is_valid(
    header: Mapping[str, Any], trailer: Mapping[str, Any], signature: Any, key: str
) -> bool:
    """Whether ``signature`` was made with ``key`` over this header and trailer."""
    return isinstance(signature, str) and constant_time_compare(
        signature, sign(header, trailer, key)
    )
