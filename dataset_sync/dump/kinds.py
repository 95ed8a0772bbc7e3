"""The kinds of data rules: what each dumps for a field, and where it is computed.

Constants (blank, null, fixed) are written without reading the column. Values derived from
the primary key (unique_*, fake) read the key and, for a nullable field, whether the value is
NULL. ``hashed`` and ``fake("text")`` read a hash and a length that the database computes
(PostgreSQL, MySQL/MariaDB and SQLite). Only ``custom`` rules, and rules on a database or
field without that SQL, see the raw value, in Python. Both ways give the same value.
``rules.py`` declares them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Func, Value
from django.db.models.functions import Cast, Concat, Left, Length
from django.utils.crypto import salted_hmac

from dataset_sync import conf

Convert = Callable[[Any, Any], Any]

#: Databases whose SQL computes ``hashed``, the derived values and the length of a text.
_SQL_VENDORS = frozenset({"postgresql", "mysql", "sqlite"})
#: Fields whose column holds a string; the rules that write strings apply to these.
_STRINGS = (models.CharField, models.TextField, models.FileField, models.FilePathField)
#: Fields that may hold personal data: text (email and URL fields are text), IP, JSON, files.
PERSONAL = (*_STRINGS, models.GenericIPAddressField, models.JSONField)
#: How many values of each kind of fake value are made; a row picks one by its key.
POOL_SIZE = 1000
_INSTALL_FAKER = "pip install 'dataset-sync[faker]'"


@dataclass(frozen=True)
class Column:
    """How the dumper reads a field under a rule.

    ``select`` replaces the column in the dump's query: the field's attname, an expression the
    database computes, or None to read nothing. ``convert(selected, pk)`` turns what was read
    into the value dumped; None dumps what was read.
    """

    select: Any
    convert: Convert | None = None


@dataclass(frozen=True)
class Constant:
    """Every row gets ``value``; the column is not read at all."""

    value: Any


class Rule:
    """What a dump holds for a field instead of its value.

    ``name`` is how the dump's header and its specs name the rule. ``column()`` says how the
    dumper computes it (in SQL where it can), ``python()`` computes it from a value already
    read; both give the same value for the same row.
    """

    #: Whether distinct values stay distinct, so that the rule may apply to a unique field.
    keeps_unique = False

    @property
    def name(self) -> str:
        raise NotImplementedError

    def problem(self, field: Any) -> str | None:
        """Why this rule cannot apply to ``field`` (a phrase), or None when it can."""
        return None

    def python(self, field: Any) -> Convert:
        """``(value, pk) -> value dumped`` for ``field``, computed in Python."""
        raise NotImplementedError

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        """How the dumper reads ``field`` on a database of ``vendor``; None: as it is."""
        return Column(field.attname, self.python(field))


@dataclass(frozen=True)
class Keep(Rule):
    keeps_unique = True

    @property
    def name(self) -> str:
        return "keep"

    def python(self, field: Any) -> Convert:
        return _value

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        return None


@dataclass(frozen=True)
class Blank(Rule):
    @property
    def name(self) -> str:
        return "blank"

    def problem(self, field: Any) -> str | None:
        if not isinstance(field, _STRINGS):
            return "cannot apply: only text and file fields can be blank. Use null or fixed."
        return None

    def python(self, field: Any) -> Convert:
        return lambda value, pk: ""

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        return Constant("")


@dataclass(frozen=True)
class Null(Rule):
    # NULLs never collide under a unique constraint.
    keeps_unique = True

    @property
    def name(self) -> str:
        return "null"

    def problem(self, field: Any) -> str | None:
        if not field.null:
            return "cannot apply: the field is not nullable. Use blank or fixed."
        return None

    def python(self, field: Any) -> Convert:
        return lambda value, pk: None

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        return Constant(None)


@dataclass(frozen=True)
class Fixed(Rule):
    value: Any

    @property
    def name(self) -> str:
        return "fixed"

    def problem(self, field: Any) -> str | None:
        try:
            field.to_python(self.value)
        except ValidationError as exc:
            return f"cannot apply: the field cannot hold {self.value!r} ({' '.join(exc.messages)})."
        return None

    def python(self, field: Any) -> Convert:
        return lambda value, pk: self.value

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        return Constant(self.value)


@dataclass(frozen=True)
class Derived(Rule):
    """A value made from the primary key by a template: unique because the key is."""

    kind: str
    template: str

    keeps_unique = True

    def __post_init__(self) -> None:
        if "{pk}" not in self.template:
            raise ValueError(
                f"{self.kind}(template={self.template!r}): the template must contain {{pk}},"
                " which makes the values unique."
            )

    @property
    def name(self) -> str:
        return self.kind

    def problem(self, field: Any) -> str | None:
        if not isinstance(field, _STRINGS):
            return "cannot apply: only text fields can hold the values it makes."
        key_length = _key_length(field.model._meta.pk)
        if key_length is None or field.max_length is None:
            return None
        pieces = self._pieces(field)
        longest = sum(map(len, pieces)) + key_length * (len(pieces) - 1)
        if longest > field.max_length:
            return (
                f"cannot apply: its values can be {longest} characters long with keys of"
                f" {key_length}, and the field holds {field.max_length}. Use a shorter template,"
                " or hashed."
            )
        return None

    def _pieces(self, field: Any) -> list[str]:
        """The template's text around each ``{pk}``, with ``{model}`` and ``{field}`` filled."""
        text = self.template.replace("{model}", field.model._meta.model_name)
        return text.replace("{field}", field.name).split("{pk}")

    def python(self, field: Any) -> Convert:
        pieces, nullable = self._pieces(field), field.null

        def derive(value: Any, pk: Any) -> Any:
            return None if nullable and value is None else str(pk).join(pieces)

        return derive

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        pk = field.model._meta.pk
        if vendor not in _SQL_VENDORS or not _integer_key(pk):
            # str() of a UUID or other key has no portable SQL spelling; the key is enough.
            return Column(_nullness(field), self.python(field))
        key = Cast(F(pk.attname), models.CharField())
        parts: list[Any] = []
        for index, piece in enumerate(self._pieces(field)):
            if index:
                parts.append(key)
            if piece:
                parts.append(Value(piece))
        derived = parts[0] if len(parts) == 1 else Concat(*parts, output_field=models.CharField())
        return Column(_unless_null(field, derived))


@dataclass(frozen=True)
class Hashed(Rule):
    """SHA-256 of a secret key followed by the value, in hex: equal values stay equal."""

    length: int | None = None

    keeps_unique = True

    @property
    def name(self) -> str:
        return "hashed"

    def problem(self, field: Any) -> str | None:
        if not isinstance(field, _STRINGS):
            return "cannot apply: only text fields can hold a hash."
        return None

    def _length(self, field: Any) -> int:
        return min(64, self.length or 64, field.max_length or 64)

    def python(self, field: Any) -> Convert:
        key, length = _hash_key(), self._length(field)

        def digest(value: Any, pk: Any) -> Any:
            if value is None:
                return None
            return hashlib.sha256((key + str(value)).encode()).hexdigest()[:length]

        return digest

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        if vendor not in _SQL_VENDORS or not _plain(field):
            return Column(field.attname, self.python(field))
        key, column = Value(_hash_key()), F(field.attname)
        # Each database's spelling of sha256(utf8(key || value)) as hex; NULL stays NULL.
        if vendor == "postgresql":
            template = "ENCODE(SHA256(CONVERT_TO(%(expressions)s, 'UTF8')), 'hex')"
            digest = Func(key, column, template=template, arg_joiner=" || ")
        elif vendor == "mysql":
            utf8 = Func(column, template="CONVERT(%(expressions)s USING utf8mb4)")
            digest = Func(key, utf8, template="SHA2(CONCAT(%(expressions)s), 256)")
        else:
            # Django registers SHA256() on every SQLite connection it opens.
            digest = Func(key, column, template="SHA256(%(expressions)s)", arg_joiner=" || ")
        digest.output_field = models.CharField()
        length = self._length(field)
        return Column(digest if length == 64 else Left(digest, length))


@dataclass(frozen=True)
class Fake(Rule):
    """A fake value of a kind: any Faker provider (``name``, ``address``, ...), or ``text``.

    ``text`` is lorem ipsum of the original's length and needs no Faker. Other kinds pick one
    of :data:`POOL_SIZE` values that Faker makes from a fixed seed, by the row's key: a
    newer Faker may make other values, and the next dump then changes those fields once.
    """

    kind: str
    locale: str | None = None

    @property
    def name(self) -> str:
        return f"fake:{self.kind}" + (f":{self.locale}" if self.locale else "")

    def problem(self, field: Any) -> str | None:
        if self.kind == "text":
            if not isinstance(field, (models.CharField, models.TextField)):
                return "cannot apply: only text fields can hold text."
            return None
        try:
            # One value is enough to tell; the checks run before every management command.
            sample = _pool(self.kind, self.locale, 1)[0]
        except ImportError:
            return f"needs Faker, which is not installed: {_INSTALL_FAKER}."
        except (AttributeError, TypeError, ValueError) as exc:
            return f"cannot make values: Faker cannot make '{self.kind}' ({exc})."
        try:
            field.to_python(_fitted(sample, field))
        except ValidationError as exc:
            return (
                f"cannot apply: the field cannot hold what Faker makes, such as {sample!r}"
                f" ({' '.join(exc.messages)})."
            )
        return None

    def python(self, field: Any) -> Convert:
        seed = _seed(field)
        if self.kind == "text":

            def text(value: Any, pk: Any) -> Any:
                return None if value is None else _text(len(value), seed, pk)

            return text
        return self._pick(field, seed)

    def _pick(self, field: Any, seed: int) -> Convert:
        pool = [_fitted(value, field) for value in _pool(self.kind, self.locale)]
        nullable = field.null

        def pick(value: Any, pk: Any) -> Any:
            if nullable and value is None:
                return None
            return pool[zlib.crc32(str(pk).encode(), seed) % POOL_SIZE]

        return pick

    def column(self, field: Any, vendor: str) -> Column | Constant | None:
        seed = _seed(field)
        if self.kind != "text":
            return Column(_nullness(field), self._pick(field, seed))
        if not _plain(field):
            return Column(field.attname, self.python(field))

        def text(length: Any, pk: Any) -> Any:
            return None if length is None else _text(length, seed, pk)

        # The database counts the characters; the text itself never leaves it.
        return Column(Length(field.attname), text)


@dataclass(frozen=True)
class Custom(Rule):
    """``function(value, pk)``: the project's own rule, which must be deterministic.

    It may apply to unique fields: keeping them unique is up to the function.
    """

    function: Convert
    label: str

    keeps_unique = True

    @property
    def name(self) -> str:
        return self.label

    def python(self, field: Any) -> Convert:
        return self.function


@dataclass(frozen=True)
class Named(Rule):
    """A rule known only by its name: one read from a dump, or a name that is not a rule."""

    label: str

    @property
    def name(self) -> str:
        return self.label

    def problem(self, field: Any) -> str | None:
        return (
            "is not a rule: use blank, hashed, keep, null, unique_email, unique_phone,"
            " unique_username, fake:KIND, or a rule object."
        )

    def python(self, field: Any) -> Convert:
        raise TypeError(f"The rule {self.label!r} is known only by its name.")


def _value(value: Any, pk: Any) -> Any:
    return value


def _integer_key(pk: Any) -> bool:
    while pk.remote_field is not None:
        # A multi-table inheritance child's key is its parent's.
        pk = pk.target_field
    return isinstance(pk, models.IntegerField)


def _key_length(pk: Any) -> int | None:
    """How many characters ``str()`` of a key can have, where the key's type says."""
    while pk.remote_field is not None:
        pk = pk.target_field
    if isinstance(pk, models.UUIDField):
        return 36
    if isinstance(pk, models.CharField):
        return int(pk.max_length) if pk.max_length else None
    if isinstance(pk, models.IntegerField):
        # Digits of the largest value (keys handed out by the database are positive), or of
        # the smallest, with its sign, for a key that may be negative.
        internal = pk.get_internal_type()
        size = 5 if "Small" in internal else 19 if "Big" in internal else 10
        return size if "Auto" in internal or "Positive" in internal else size + 1
    return None


def _plain(field: Any) -> bool:
    """Whether the column holds the value as Python sees it (no ``from_db_value``)."""
    return isinstance(field, (models.CharField, models.TextField)) and not hasattr(
        field, "from_db_value"
    )


def _nullness(field: Any) -> Any:
    """What to read for a rule that needs only whether the value is NULL: None if never."""
    if not field.null:
        return None
    return _unless_null(field, Value(1, output_field=models.IntegerField()))


def _unless_null(field: Any, expression: Any) -> Any:
    if not field.null:
        return expression
    return models.Case(
        models.When(**{f"{field.attname}__isnull": True}, then=Value(None)),
        default=expression,
        output_field=expression.output_field,
    )


def _hash_key() -> str:
    """The key ``hashed`` prefixes to values: derived from the secret, never the secret."""
    return salted_hmac("dataset_sync.rules.hashed", "", secret=conf.rules_secret()).hexdigest()


def _seed(field: Any) -> int:
    """A field's own seed, so that the fields of one row get unrelated fake values."""
    return zlib.crc32(f"{field.model._meta.label_lower}.{field.name}:".encode())


def _fitted(value: Any, field: Any) -> Any:
    max_length = getattr(field, "max_length", None)
    if isinstance(value, str) and max_length:
        return value[:max_length]
    return value


@functools.cache
def _faker() -> ModuleType:
    return importlib.import_module("faker")


@functools.cache
def _pool(kind: str, locale: str | None, size: int = POOL_SIZE) -> tuple[Any, ...]:
    """``size`` values of ``kind``, always the same ones for the same Faker.

    A smaller pool is the start of a larger one: the seed is the same.
    """
    faker = _faker().Faker(locale)
    faker.seed_instance(zlib.crc32(f"{kind}:{locale}".encode()))
    make = getattr(faker, kind)
    return tuple(make() for _ in range(size))


#: The words fake texts are made of; split when first used.
_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure "
    "in reprehenderit voluptate velit esse cillum eu fugiat nulla pariatur excepteur "
    "sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id "
    "est laborum"
)


@functools.cache
def _lorem() -> tuple[str, list[int]]:
    """A fixed lorem ipsum text to cut fake texts from, and where its words start."""
    rng = random.Random(2026)
    words = _WORDS.split()
    text = " ".join(rng.choice(words) for _ in range(2000)) + " "
    starts = [0] + [index + 1 for index, char in enumerate(text[:-1]) if char == " "]
    return text, starts


def _text(length: int, seed: int, pk: Any) -> str:
    """Lorem ipsum of exactly ``length`` characters, chosen by the row's key."""
    text, starts = _lorem()
    start = starts[zlib.crc32(str(pk).encode(), seed) % len(starts)]
    return (text * (length // len(text) + 2))[start : start + length]
