"""How a dump writes values: Django's JSON encoding, without what it loses.

Django's encoder (``DjangoJSONEncoder``, which ``dumpdata`` uses) cuts datetimes and times to
the millisecond, so a row synced through it differs from the source's by up to 999
microseconds, and it writes decimals as ``str()`` does, which turns small values and zeros
with many places into exponents (``1E-7``, ``0E-10``). Format version 2 keeps every value
exactly: datetimes and times with their microseconds, decimals in positional notation with
every place the database returned (``0.0000001``, ``1.50``). Every value that Django's encoder
writes exactly is written byte for byte as ``dumpdata`` writes it, so the two differ only
where Django loses digits.
"""

from __future__ import annotations

import datetime
import decimal
import json
import json.encoder
from collections.abc import Callable, Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.timezone import is_aware


class ExactJSONEncoder(DjangoJSONEncoder):
    """``DjangoJSONEncoder``, with datetimes and times to the microsecond and exact decimals.

    Values that Django's encoder writes exactly are written byte for byte as it writes them:
    a datetime to the millisecond keeps its three digits (``.500Z``), only one with digits
    below the millisecond gets six.
    """

    def default(self, o: Any) -> Any:
        # Datetimes and decimals first: they are what rows hold most.
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            if o.microsecond and not o.microsecond % 1000:
                text = text[:23] + text[26:]  # three digits, as Django writes them
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, decimal.Decimal):
            text = str(o)
            # Positional notation keeps every place without an exponent, as the database does;
            # str() is Django's, and several times faster where it has no exponent.
            return format(o, "f") if "E" in text else text
        if isinstance(o, datetime.time) and o.microsecond % 1000 and not is_aware(o):
            return o.isoformat()
        # Everything else as Django encodes it; it refuses aware times.
        return super().default(o)


#: How a dump writes one object: as one line of JSON.
ObjectEncoder = Callable[[dict[str, Any]], str]


def _object_encoder(encoder: json.JSONEncoder) -> ObjectEncoder:
    """``encoder.encode()``, with the C encoder that it builds on every call built once.

    Building it cost as much as encoding a row. Rows hold no cycles, so it need not look
    for them. Without the json module's C accelerator, or for indented output, it is
    ``encoder.encode()`` itself.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return encoder.encode
    c_encoder: Callable[[Any, int], Sequence[str]] = make(
        None,
        encoder.default,
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(obj: dict[str, Any]) -> str:
        return "".join(c_encoder(obj, 0))

    return encode


#: One object as format version 2 writes it: every value exact.
encode_exactly = _object_encoder(ExactJSONEncoder(ensure_ascii=False))
#: One object as format version 1 wrote it, and dumpdata writes it: Django's JSON encoding.
encode_as_django = _object_encoder(DjangoJSONEncoder(ensure_ascii=False))
