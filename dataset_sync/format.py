"""The dump file format, in one place.

A dump is one JSON document laid out one object per line, so that it can be written and read
as a stream and still be loaded by any JSON parser::

    {"format": "dataset_sync", "version": 2, "dataset": ..., "specs": [...], ..., "objects": [
    {"model": "app.model", "pk": 1, "fields": {...}},
    {"model": "app.model", "pk": 2, "fields": {...}}
    ], "count": 2, "spec_counts": [2], "sha256": "..."}

The header comes before the objects and the trailer after them. ``sha256`` is the digest of
the object lines (without the separating commas, each followed by a newline), so a truncated
or edited file is found before anything is written. With a signing key, the trailer also
carries ``signature``, an HMAC over the header and the digest (see ``signing.py``).

Version 2 writes every value exactly (``encoding.py``); version 1 wrote datetimes and times
to the millisecond, as Django's JSON encoder does. Both are read, and so are feincms3-data's
dumps (``{"version": 1, "specs": [...], "objects": [...]}``), without the digest.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import json
import lzma
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.template.defaultfilters import pluralize

from dataset_sync import schema, signing
from dataset_sync.encoding import ObjectEncoder, encode_as_django, encode_exactly
from dataset_sync.errors import DumpFormatError, InvalidVersionError, UntrustedDumpError

FORMAT = "dataset_sync"
#: The version written unless asked otherwise: values to the microsecond, decimals with
#: every place.
VERSION = 2
#: How each version that can be written encodes an object. Version 1 is for loaders that read
#: no other: feincms3-data's, and dataset_sync's before version 2.
ENCODERS: dict[int, ObjectEncoder] = {1: encode_as_django, 2: encode_exactly}
#: The versions read. Their objects differ only in how precisely values are written, so they
#: load the same way: a version 1 value is compared with the target's as it is, to the
#: millisecond, and a reload of a version 1 dump still writes nothing.
READS = (1, 2)
_OBJECTS_OPEN = ', "objects": ['
_TRAILER_OPEN = "], "
_COMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
#: How each compressed format starts, for stdin, which has no file name to go by.
_MAGIC = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
#: What reading a damaged or cut-off file raises: gzip and xz raise their own errors for
#: corrupted compressed data, bz2 an OSError.
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
#: A JSON escape of a UTF-16 surrogate. json.loads() turns a pair into one character but
#: keeps a lone one, which no database can store; text read as UTF-8 cannot hold one, so
#: only text with such an escape needs a closer look.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: The deepest nesting of arrays and objects a dump's object may hold. Python parses and
#: encodes JSON recursively, and the database adapters encode a JSON field's value again from
#: deeper in the stack than the reader parsed it: a value the reader could barely parse would
#: fail there. No real data comes near.
MAX_DEPTH = 500


class Writable(Protocol):
    """Where a dump goes: a file, stdout, or a management command's output wrapper."""

    def write(self, text: str, /) -> Any: ...


_TOO_DEEP = (
    f"arrays or objects are nested more than {MAX_DEPTH} deep; the file was damaged or edited."
    " Dump it again."
)


def _decode(text: str, where: str) -> Any:
    """``json.loads(text)``; DumpFormatError naming ``where`` for valid JSON that Python cannot
    read: an integer of more digits than it converts (``sys.get_int_max_str_digits()``), or
    arrays and objects nested deeper than its recursion limit. No dump holds either."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise DumpFormatError(f"{where} cannot be read: {_TOO_DEEP}") from None
    except ValueError:
        raise DumpFormatError(
            f"{where} cannot be read: a number has more digits than Python reads; the file was"
            " damaged or edited. Dump it again."
        ) from None


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests arrays and objects more than MAX_DEPTH deep; without
    recursion, since such a value is what exhausts it."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            pending.extend((child, depth + 1) for child in children)
    return False


def _brackets(text: str) -> int:
    """How many arrays and objects ``text`` may open: never fewer than its deepest nesting,
    so a text with at most MAX_DEPTH of them needs no closer look."""
    return text.count("[") + text.count("{")


def _lone_surrogate(value: Any) -> bool:
    """Whether ``value`` holds a string that is not text: a lone UTF-16 surrogate."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _refuse_lone_surrogates(data: Any, where: str) -> None:
    """DumpFormatError when ``data`` (an object, or a header or trailer) holds a lone
    surrogate, naming ``where`` it is and, for an object, the object and its field.

    Called only for text with a surrogate escape in it, so rows do not pay for it.
    """
    if not _lone_surrogate(data):
        return
    if (
        isinstance(data, dict)
        and isinstance(data.get("fields"), dict)
        and not _lone_surrogate([data.get("model"), data.get("pk")])
    ):
        where += f": {data.get('model')}(pk={data.get('pk')!r})"
        for name, value in data["fields"].items():
            if not _lone_surrogate(name) and _lone_surrogate(value):
                where += f": field '{name}'"
                break
    raise DumpFormatError(
        f"{where} holds a lone surrogate escape (\\ud800 to \\udfff without its pair), which"
        " is not text; the file was damaged or edited. Dump it again."
    )


def open_output(file: IO[bytes], name: str | Path) -> IO[str]:
    """A text stream writing into ``file``, compressed when the extension of ``name`` asks for
    it. The compressors leave ``file`` open when they close: the caller closes it."""
    opener = _COMPRESSORS.get(Path(name).suffix)
    if opener is not None:
        return opener(file, "wt", encoding="utf-8")  # type: ignore[operator,no-any-return]
    return io.TextIOWrapper(file, encoding="utf-8")


def open_input(path: str) -> IO[str]:
    """A text stream reading ``path`` (``-`` for stdin), decompressed by extension.

    Compressed stdin is recognised by its first bytes. Closing the stream returned for
    stdin would close stdin itself; detach it instead.
    """
    if path == "-":
        stdin = sys.stdin.buffer
        head = stdin.peek(6)[:6] if isinstance(stdin, io.BufferedReader) else b""
        for magic, decompress in _MAGIC.items():
            if head.startswith(magic):
                return decompress(stdin, "rt", encoding="utf-8")  # type: ignore[operator,no-any-return]
        return io.TextIOWrapper(stdin, encoding="utf-8")
    opener = _COMPRESSORS.get(Path(path).suffix)
    try:
        if opener is not None:
            return opener(path, "rt", encoding="utf-8")  # type: ignore[operator,no-any-return]
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DumpFormatError("no such file.") from None
    except IsADirectoryError:
        raise DumpFormatError("is a directory, not a dump file.") from None


@dataclass
class Header:
    """What a dump says about itself before its objects."""

    specs: list[dict[str, Any]]
    dataset: str | None = None
    args: str = ""
    vendor: str | None = None
    created: str | None = None
    version: int = VERSION
    #: The data rules applied, by name: ``{model label: {field name: rule name}}``. None for
    #: dumps written before the header had the field (and feincms3-data's).
    rules: dict[str, dict[str, str]] | None = None
    #: How rows of models other than by primary key are recognised: ``{model label:
    #: "natural_key" or [field, ...]}``. None for dumps written before the header had it.
    identities: dict[str, Any] | None = None
    #: The schema the dump was written with (``schema.record()``): Django version, applied
    #: migrations, fields per model. None for dumps written before the header had it.
    schema: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT,
            "version": self.version,
            "dataset": self.dataset,
            "args": self.args,
            "specs": self.specs,
        }
        if self.rules is not None:
            data["rules"] = self.rules
        if self.identities is not None:
            data["identities"] = self.identities
        if self.schema is not None:
            data["schema"] = self.schema
        return {**data, "vendor": self.vendor, "created": self.created}


class DumpWriter:
    """Writes a header, then objects one line each, then the trailer with count and digest.

    Objects are encoded as the header's format version says. With ``signing_key``, the
    trailer is signed.
    """

    def __init__(self, stream: Writable, header: Header, signing_key: str | None = None) -> None:
        self._stream = stream
        self._header = header
        self._encode = ENCODERS[header.version]
        self._signing_key = signing_key
        self._digest = hashlib.sha256()
        self._pending: str | None = None
        self.spec_counts: list[int] = []
        self.count = 0
        opening = json.dumps(header.as_dict(), cls=DjangoJSONEncoder, ensure_ascii=False)
        stream.write(opening[:-1] + _OBJECTS_OPEN + "\n")

    def start_spec(self) -> None:
        """Objects written from now on belong to the next spec."""
        self.spec_counts.append(0)

    def write(self, obj: dict[str, Any]) -> None:
        """Write one object (Django's serializer representation) as its line."""
        line = self._encode(obj)
        # One object is held back so that the last one is written without a comma.
        if self._pending is not None:
            self._stream.write(self._pending + ",\n")
        self._pending = line
        self._digest.update(line.encode() + b"\n")
        self.spec_counts[-1] += 1
        self.count += 1

    def close(self) -> None:
        if self._pending is not None:
            self._stream.write(self._pending + "\n")
        trailer: dict[str, Any] = {"count": self.count, "spec_counts": self.spec_counts}
        trailer["sha256"] = self._digest.hexdigest()
        if self._signing_key:
            trailer["signature"] = signing.sign(self._header.as_dict(), trailer, self._signing_key)
        self._stream.write(_TRAILER_OPEN + json.dumps(trailer)[1:] + "\n")


class DumpReader:
    """Reads a dump as a stream; :meth:`batches` verifies count and digest at the end.

    ``header`` is available once the reader is created. Iterate :meth:`batches` once;
    it raises DumpFormatError for anything malformed, truncated or edited. With
    ``signing_key``, it raises UntrustedDumpError at the end for a dump that is not signed
    with that key.
    """

    def __init__(
        self, stream: IO[str], signing_key: str | None = None, batch_size: int = 1000
    ) -> None:
        #: Object lines parsed together: one parse per batch costs far less than one per line.
        self.batch_size = batch_size
        self._stream = stream
        self._signing_key = signing_key
        try:
            first = stream.readline()
        except UnicodeDecodeError:
            raise self._error(
                "not a dump: the file is not UTF-8 text. Pass a file written by dumpdata-spec."
            ) from None
        except _READ_ERRORS as exc:
            raise self._error(
                f"cannot be read ({exc}); the file is truncated or corrupted. Dump it again."
            ) from exc
        if not first:
            raise self._error("the file is empty; the dump failed or was cut off. Dump it again.")
        #: Objects per spec, in spec order; known once :meth:`batches` has been read to the end.
        self.spec_counts: list[int] | None = None
        self._in_memory: dict[str, Any] | None = None
        if first.startswith('{"format": ') and first.rstrip("\n").endswith(_OBJECTS_OPEN):
            self.header = self._parse_header(first)
        else:
            self._in_memory = self._parse_whole(first)
            self.header = self._header_of(self._in_memory)

    def _error(self, message: str) -> DumpFormatError:
        return DumpFormatError(message)

    def _parse_header(self, line: str) -> Header:
        try:
            data = _decode(line.rstrip("\n")[: -len(_OBJECTS_OPEN)] + "}", "line 1")
        except json.JSONDecodeError as exc:
            raise self._error(f"line 1 is not a valid header ({exc}).") from exc
        if _SURROGATE_ESCAPE.search(line):
            _refuse_lone_surrogates(data, "line 1: the header")
        return self._header_of(data)

    def _parse_whole(self, first: str) -> dict[str, Any]:
        # Not our line layout: a feincms3-data dump, or one of ours reformatted by a tool.
        try:
            text = first + self._stream.read()
            data = _decode(text, "the file")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._error(
                f"not a dump: the file is not valid JSON ({exc}). Pass a file written by"
                " dumpdata-spec."
            ) from exc
        except _READ_ERRORS as exc:
            raise self._error(
                f"cannot be read ({exc}); the file is truncated or corrupted. Dump it again."
            ) from exc
        objects = data.get("objects") if isinstance(data, dict) else None
        objects = objects if isinstance(objects, list) else []
        if _SURROGATE_ESCAPE.search(text):
            for index, obj in enumerate(objects):
                _refuse_lone_surrogates(obj, f"object {index + 1}")
            _refuse_lone_surrogates(data, "the header")
        if _brackets(text) > MAX_DEPTH:
            for index, obj in enumerate(objects):
                if _too_deep(obj):
                    raise self._error(f"object {index + 1} cannot be read: {_TOO_DEEP}")
        if isinstance(data, dict) and data.get("version", VERSION) not in READS:
            # A dump of another version may have another shape: say that first.
            self._header_of(data)
        if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
            raise self._error(
                "not a dump: expected a JSON object with an 'objects' list. Pass a file"
                " written by dumpdata-spec."
            )
        return data

    def _header_of(self, data: dict[str, Any]) -> Header:
        if data.get("format", FORMAT) != FORMAT:
            raise self._error(f"not a dump: unknown format {data.get('format')!r}.")
        version = data.get("version")
        if version not in READS:
            raise InvalidVersionError(
                f"format version {version!r} is not supported; this dataset_sync reads"
                f" versions {' and '.join(map(str, READS))}. Use the same dataset_sync version"
                " on both sides."
            )
        specs = data.get("specs")
        if not isinstance(specs, list):
            raise self._error("not a dump: the header has no 'specs' list.")
        for key in ("dataset", "args", "vendor", "created"):
            if not isinstance(data.get(key), (str, type(None))):
                raise self._error(
                    f"the header's '{key}' must be a string, not {data[key]!r}. Dump it again."
                )
        rules = data.get("rules")
        if rules is not None and not (
            isinstance(rules, dict)
            and all(
                isinstance(names, dict) and all(isinstance(name, str) for name in names.values())
                for names in rules.values()
            )
        ):
            raise self._error(
                "the header's 'rules' must map models to fields to rule names. Dump it again."
            )
        identities = data.get("identities")
        if identities is not None and not (
            isinstance(identities, dict)
            and all(
                identity == "natural_key"
                or (
                    isinstance(identity, list)
                    and identity
                    and all(isinstance(name, str) for name in identity)
                )
                for identity in identities.values()
            )
        ):
            raise self._error(
                "the header's 'identities' must map models to 'natural_key' or a list of field"
                " names. Dump it again."
            )
        record = data.get("schema")
        if record is not None and not schema.is_record(record):
            raise self._error(
                "the header's 'schema' must hold the Django version, the migrations per app and"
                " the fields per model. Dump it again."
            )
        return Header(
            specs=specs,
            dataset=data.get("dataset"),
            args=data.get("args") or "",
            vendor=data.get("vendor"),
            created=data.get("created"),
            # The version read, not the one written: a signature covers it.
            version=version,
            rules=rules,
            identities=identities,
            schema=record,
        )

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Every object in file order, in lists of ``batch_size``; DumpFormatError on a defect."""
        if self._in_memory is not None:
            objects = list(self._objects_in_memory(self._in_memory))
            for start in range(0, len(objects), self.batch_size):
                yield objects[start : start + self.batch_size]
        else:
            yield from self._batches()

    def _objects_in_memory(self, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if "format" in data:
            digest = hashlib.sha256()
            for obj in data["objects"]:
                # Parsed JSON holds no values that the versions encode differently.
                digest.update(encode_exactly(obj).encode() + b"\n")
            self._verify_trailer(data, len(data["objects"]), digest.hexdigest())
        else:
            # feincms3-data dumps carry no trailer, no digest and no signature.
            self._verify_signature({})
        for obj in data["objects"]:
            yield self._checked(obj, None)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        """The objects of a streamed dump, a batch of lines at a time.

        A batch of valid lines is parsed as one JSON array, which costs far less than a
        parse per line; a batch that fails is parsed again line by line to name the line.
        """
        digest = hashlib.sha256()
        count = 0
        first_line = 2  # the header is line 1
        try:
            while lines := list(itertools.islice(self._stream, self.batch_size)):
                end = next(
                    (i for i, line in enumerate(lines) if line.startswith(_TRAILER_OPEN)), None
                )
                if end is None:
                    yield self._parse_batch(lines, first_line, digest)
                    count += len(lines)
                    first_line += len(lines)
                    continue
                yield self._parse_batch(lines[:end], first_line, digest)
                count += end
                line_number = first_line + end
                trailer = self._parse_trailer(lines[end], line_number)
                self._verify_trailer(trailer, count, digest.hexdigest())
                self._expect_end(line_number, lines[end + 1 :])
                return
        except UnicodeDecodeError:
            raise self._error(f"the text after line {first_line - 1} is not UTF-8.") from None
        except _READ_ERRORS as exc:
            raise self._error(
                f"cannot be read after {count:,} object{pluralize(count)} ({exc}); the file is"
                " truncated or corrupted. Dump it again."
            ) from exc
        raise self._error(
            f"trailer missing after {count:,} object{pluralize(count)}; the file is truncated."
            " Dump it again."
        )

    def _parse_batch(self, lines: list[str], first_line: int, digest: Any) -> list[dict[str, Any]]:
        """Parse and digest object lines as read, each with its comma and newline."""
        text = "".join(lines)
        try:
            parsed = json.loads("[" + text.rstrip("\n").removesuffix(",") + "]")
        except (ValueError, RecursionError):
            # Not JSON, or beyond what Python reads: line by line, to name the line.
            parsed = None
        if not isinstance(parsed, list) or len(parsed) != len(lines):
            parsed = []
            for line_number, line in enumerate(lines, start=first_line):
                line = line.rstrip("\n").removesuffix(",")
                try:
                    parsed.append(self._checked(_decode(line, f"line {line_number}"), line_number))
                except json.JSONDecodeError as exc:
                    raise self._error(
                        f"line {line_number} is not valid JSON ({exc.msg}); the file is"
                        " truncated or corrupted. Dump it again."
                    ) from None
        else:
            for line_number, data in enumerate(parsed, start=first_line):
                self._checked(data, line_number)
        if _SURROGATE_ESCAPE.search(text):
            for line_number, data in enumerate(parsed, start=first_line):
                _refuse_lone_surrogates(data, f"line {line_number}")
        if _brackets(text) > MAX_DEPTH:
            for line_number, (line, data) in enumerate(
                zip(lines, parsed, strict=True), start=first_line
            ):
                if _brackets(line) > MAX_DEPTH and _too_deep(data):
                    raise self._error(f"line {line_number} cannot be read: {_TOO_DEEP}")
        # The digest covers each object's line without its comma.
        digest.update(text.replace(",\n", "\n").encode())
        return parsed

    def _checked(self, data: Any, line_number: int | None) -> dict[str, Any]:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("model"), str)
            or "pk" not in data
            or not isinstance(data.get("fields", {}), dict)
        ):
            where = f"line {line_number}" if line_number else "an object"
            raise self._error(
                f"{where} is not a serialized object with 'model', 'pk' and 'fields'."
            )
        return data

    def _parse_trailer(self, raw: str, line_number: int) -> dict[str, Any]:
        try:
            trailer = _decode("{" + raw.rstrip("\n")[len(_TRAILER_OPEN) :], f"line {line_number}")
        except json.JSONDecodeError:
            raise self._error(
                f"line {line_number}: the trailer is not valid JSON; the file is truncated"
                " or corrupted. Dump it again."
            ) from None
        if _SURROGATE_ESCAPE.search(raw):
            _refuse_lone_surrogates(trailer, f"line {line_number}: the trailer")
        # Valid JSON that starts with "{" is an object.
        return trailer  # type: ignore[no-any-return]

    def _verify_trailer(self, trailer: dict[str, Any], count: int, digest: str) -> None:
        if trailer.get("count") != count:
            raise self._error(
                f"the trailer counts {trailer.get('count')!r} objects but the file holds"
                f" {count:,}; the file is truncated or was edited. Dump it again."
            )
        spec_counts = trailer.get("spec_counts")
        if (
            isinstance(spec_counts, list)
            and len(spec_counts) == len(self.header.specs)
            and all(type(each) is int and each >= 0 for each in spec_counts)
            and sum(spec_counts) == count
        ):
            self.spec_counts = spec_counts
        elif spec_counts is not None:
            raise self._error(
                "the trailer's spec_counts are not one count per spec adding up to its count."
            )
        if trailer.get("sha256") != digest:
            raise self._error(
                "the digest of the objects does not match the trailer; the file was changed"
                " after it was dumped. Dump it again."
            )
        self._verify_signature(trailer)

    def _verify_signature(self, trailer: dict[str, Any]) -> None:
        if not self._signing_key:
            return
        if "signature" not in trailer:
            raise UntrustedDumpError(
                "the dump is not signed, and this database loads only signed"
                " dumps (DATASET_SYNC_SIGNING_KEY is set). Set the same key where the dump is"
                " made and dump it again."
            )
        if not signing.is_valid(
            self.header.as_dict(), trailer, trailer["signature"], self._signing_key
        ):
            raise UntrustedDumpError(
                "the dump's signature does not match: it was signed with another"
                " key, or changed after it was dumped. Use the same DATASET_SYNC_SIGNING_KEY on"
                " both sides and dump it again."
            )

    def _expect_end(self, line_number: int, rest: list[str]) -> None:
        if "".join(rest).strip() or self._stream.read().strip():
            raise self._error(
                f"unexpected content after the trailer on line {line_number}. Dump it again."
            )
