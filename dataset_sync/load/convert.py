"""Converting one model's serialized objects into rows of Python values, and back.

A :class:`RowConverter` turns each dumped object into a :class:`Row` of Python values,
exactly as Django's deserializer would (``to_python()`` per field, natural keys looked up);
its :class:`Column` objects turn Python values into database parameters
(``get_db_prep_save()``), and :func:`from_db` turns values read from the database into
Python values the way a ``values_list()`` query would (the backend's and the field's
converters). For a multi-table inheritance child it covers only the child's table: the
parent's rows come as objects of the parent model.

Those conversions cost more than the database does, so each field's is worked out once. A
field whose conversions Django leaves a value of one type unchanged (a stock integer, text
or boolean field, given an ``int``, ``str`` or ``bool``) takes such values as they are; every
other value goes through the field's own methods.
"""

from __future__ import annotations

import decimal
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.operations import BaseDatabaseOperations

from dataset_sync.errors import SchemaMismatchError
from dataset_sync.identity import PK, Identities

Convert = Callable[[Any], Any]


def describe(model: type[models.Model], pk: Any) -> str:
    """How messages name a row: ``app.model(pk=42)``, a UUID key as the dump writes it."""
    if isinstance(pk, uuid.UUID):
        pk = str(pk)
    return f"{model._meta.label_lower}(pk={pk!r})"


@dataclass(slots=True)
class Row:
    """One dumped object, converted: primary key, column values, many-to-many targets.

    A value that names a row by identity or natural key stays a :class:`Reference` until the
    keys stage resolves it; ``identity`` is the row's own, for a model that declares one.
    """

    pk: Any
    values: dict[str, Any]
    m2m: dict[str, set[Any]]
    identity: list[Any] | None = None
    #: Whether the row gets a key from the database (saved as new, or not on the target).
    new: bool = False
    #: The primary key in the dump, whatever key the row gets on the target.
    dumped: Any = None


class Reference:
    """A value of a dumped row that names another row by identity or natural key."""

    __slots__ = ("key", "model")

    def __init__(self, model: type[models.Model] | None, key: list[Any]) -> None:
        #: The model of the row named; None for a generic foreign key, whose content type
        #: says it.
        self.model = model
        self.key = key

    def __repr__(self) -> str:
        return repr(self.key)


#: Stock fields, the type of value that their to_python(), get_prep_value(),
#: get_db_prep_value() and get_db_prep_save() all return unchanged, and the connection hook
#: that must be Django's own for that to hold (PostgreSQL wraps integers for its driver;
#: MySQL refuses 0 for auto fields). Subclasses that override none of the four share it.
_PASS_THROUGH: tuple[tuple[type[models.Field[Any, Any]], type, str | None], ...] = (
    (models.AutoField, int, "validate_autopk_value"),
    (models.BigAutoField, int, "validate_autopk_value"),
    (models.SmallAutoField, int, "validate_autopk_value"),
    (models.IntegerField, int, "adapt_integerfield_value"),
    (models.CharField, str, None),
    (models.TextField, str, None),
    (models.BooleanField, bool, None),
)
_CONVERSIONS = ("to_python", "get_prep_value", "get_db_prep_value", "get_db_prep_save")


def _stock(field: models.Field[Any, Any], base: type[models.Field[Any, Any]]) -> bool:
    return isinstance(field, base) and all(
        getattr(type(field), name) is getattr(base, name) for name in _CONVERSIONS
    )


def python_type(field: models.Field[Any, Any]) -> type | None:
    """The JSON type that ``field.to_python()`` returns unchanged, if there is one."""
    if (
        isinstance(field, models.ForeignKey)
        and type(field).to_python is models.ForeignKey.to_python
    ):
        field = field.target_field
    for base, type_, _hook in _PASS_THROUGH:
        if isinstance(field, base) and type(field).to_python is base.to_python:
            return type_
    return None


def _db_path(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> tuple[type | None, Convert | None]:
    """The Python type whose values (and None) ``field.get_db_prep_save()`` only hands to a
    connection hook, and that hook, or None where the values pass unchanged."""
    target = field
    if isinstance(field, models.ForeignKey):
        if not _stock(field, models.ForeignKey):
            return None, None
        target = field.target_field
    ops = type(connection.ops)
    for base, type_, hook in _PASS_THROUGH:
        if _stock(target, base):
            if hook is None or getattr(ops, hook, None) is getattr(
                BaseDatabaseOperations, hook, None
            ):
                return type_, None
            if hook == "adapt_integerfield_value":
                internal_type = target.get_internal_type()
                return type_, functools.partial(
                    connection.ops.adapt_integerfield_value, internal_type=internal_type
                )
            return type_, getattr(connection.ops, hook)
    if _stock(target, models.DecimalField) and _keeps_decimals(connection):
        return decimal.Decimal, None
    return None, None


def _keeps_decimals(connection: BaseDatabaseWrapper) -> bool:
    # Django 5.0 and later hand decimals to the driver as they are; earlier versions format
    # them as strings.
    probe = decimal.Decimal("0.10")
    adapted: object = connection.ops.adapt_decimalfield_value(probe, 3, 2)
    return adapted is probe


def _hooked(types: frozenset[type], hook: Convert, full: Convert) -> Convert:
    def to_db(value: Any) -> Any:
        return hook(value) if type(value) in types else full(value)

    return to_db


def _integer_range(field: Any, connection: BaseDatabaseWrapper) -> tuple[int, int] | None:
    """The integers the database can store in ``field``'s column, if it is an integer column."""
    while field.remote_field is not None:  # a foreign key, or a child's parent link
        field = field.target_field
    kind = field.get_internal_type()
    if kind not in connection.ops.integer_field_ranges:
        return None
    low, high = connection.ops.integer_field_range(kind)
    # No limit (SQLite, before Django 5.0) still means what the driver can bind.
    return (-(2**63) if low is None else low), (2**63 - 1 if high is None else high)


def _check_range(value: Any, bounds: tuple[int, int] | None) -> None:
    """Refuse an integer the column cannot hold: a clear error rather than a driver crash."""
    if bounds is not None and type(value) is int and not bounds[0] <= value <= bounds[1]:
        raise ValidationError(f"{value} is out of range ({bounds[0]} to {bounds[1]})")


def _zero_refused(field: Any, connection: BaseDatabaseWrapper) -> str | None:
    """Why the database takes no 0 in ``field``'s column, a reference to an automatic key
    (MySQL and MariaDB read 0 there as "generate one"); None where it does."""
    while field.remote_field is not None:
        field = field.target_field
    if not field.get_internal_type().endswith("AutoField"):
        return None
    try:
        connection.ops.validate_autopk_value(0)
    except ValueError as exc:
        return str(exc)
    return None


class _Digits:
    """The decimals a decimal column holds: ``max_digits`` digits once rounded to
    ``decimal_places``, as the database rounds them.

    Checked here because SQLite stores any number in any column: a value too large for its
    field would load, and every later read of the table fail to convert it back.
    """

    __slots__ = ("context", "max_digits", "places", "quantum")

    def __init__(self, max_digits: int, places: int) -> None:
        self.max_digits, self.places = max_digits, places
        self.quantum = decimal.Decimal(1).scaleb(-places)
        self.context = decimal.Context(prec=max_digits)

    def check(self, value: Any) -> None:
        if type(value) is not decimal.Decimal:
            return
        try:
            value.quantize(self.quantum, context=self.context)
        except decimal.InvalidOperation:
            raise ValidationError(
                f"{value} does not fit {self.max_digits} digits with {self.places} decimal places"
            ) from None


def _digits(field: Any) -> _Digits | None:
    if isinstance(field, models.DecimalField) and field.max_digits is not None:
        return _Digits(field.max_digits, field.decimal_places or 0)
    return None


class Column:
    """One concrete field of a table: its conversions from JSON, to and from the database."""

    def __init__(self, field: Any, connection: BaseDatabaseWrapper) -> None:
        self.field = field
        self.name: str = field.name
        self.attname: str = field.attname
        self.column: str = field.column
        #: A JSON value of this type is already the Python value (None always is).
        self.python_type = python_type(field)
        #: For everything else; a foreign key converts as its target field does.
        self.to_python: Convert = field.to_python
        #: Python values of these types are already database parameters.
        self.db_types: frozenset[type] = frozenset()
        #: For everything else.
        self.to_db: Convert = functools.partial(field.get_db_prep_save, connection=connection)
        db_type, hook = _db_path(field, connection)
        if db_type is not None and hook is None:
            self.db_types = frozenset({db_type, type(None)})
        elif db_type is not None and hook is not None:
            self.to_db = _hooked(frozenset({db_type, type(None)}), hook, self.to_db)
        col = field.get_col(field.model._meta.db_table)
        # What a values_list() query applies to this column, in the same order.
        self.from_db = [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]
        self.expression = col
        #: The range of an integer column (None for other columns).
        self.bounds = _integer_range(field, connection)
        #: The size of a decimal column (None for other columns).
        self.digits = _digits(field)

    def db(self, value: Any) -> Any:
        if type(value) in self.db_types:
            return value
        return self.to_db(value)


class RowConverter:
    """How the serialized objects of one model map onto the columns of its own table."""

    def __init__(
        self,
        model: type[models.Model],
        connection: BaseDatabaseWrapper,
        ignorenonexistent: bool,
        identities: Identities | None = None,
    ) -> None:
        meta = model._meta
        identities = identities or Identities({})
        #: Related models whose rows the dump names by a list (identity or natural key); only
        #: their fields, and generic foreign keys' object ids, can hold a Reference.
        self._named = {
            field.related_model
            for field in [*meta.local_concrete_fields, *meta.local_many_to_many]
            if field.remote_field is not None
            and identities.reference(field.related_model).kind != PK  # type: ignore[arg-type]
        }
        self.model = model
        self.label = meta.label_lower
        self.connection = connection
        self.ignorenonexistent = ignorenonexistent
        assert meta.pk is not None
        self.pk: models.Field[Any, Any] = meta.pk
        self.fields: dict[str, models.Field[Any, Any]] = {
            field.name: field for field in meta.local_concrete_fields if field is not meta.pk
        }
        self.fields_by_attname: dict[str, models.Field[Any, Any]] = {
            field.attname: field for field in self.fields.values()
        }
        # Relation attributes are loosely typed in django-stubs; these stay Any.
        self.m2m: dict[str, Any] = {
            field.name: field
            for field in meta.local_many_to_many
            if field.remote_field.through._meta.auto_created  # type: ignore[union-attr]
        }
        self.pk_column = Column(self.pk, connection)
        self.by_name = {name: Column(field, connection) for name, field in self.fields.items()}
        self.columns = [self.pk_column, *self.by_name.values()]
        #: The attnames of the non-pk columns, in the order existing rows are read.
        self.attnames = tuple(column.attname for column in self.by_name.values())
        #: Per name of a reference that cannot hold 0 (MySQL, MariaDB): its attname and why.
        self._zero_refused = {
            name: (column.attname, reason)
            for name, column in self.by_name.items()
            if column.field.remote_field is not None
            and (reason := _zero_refused(column.field, connection)) is not None
        }
        #: Object id fields of generic foreign keys whose content type field is a column too.
        self.generic = {
            gfk.fk_field: gfk.ct_field
            for gfk in meta.private_fields
            if getattr(gfk, "fk_field", None) in self.fields
            and getattr(gfk, "ct_field", None) in self.fields
        }
        #: The columns (attnames) and many-to-many fields whose values may name rows by
        #: identity or natural key, and so need resolving.
        self.referring = [
            field.attname
            for field in self.fields.values()
            if field.remote_field is not None and field.related_model in self._named
        ]
        if identities.as_json():
            self.referring += [self.fields[name].attname for name in self.generic]
        self.referring_links = [
            name for name, field in self.m2m.items() if field.related_model in self._named
        ]
        # Per many-to-many field: the related model, its key field, and the JSON type that
        # key takes as is.
        self._m2m_targets = {
            name: (
                field.related_model,
                field.target_field,
                python_type(field.target_field),
                _integer_range(field.target_field, connection),
                _zero_refused(field.target_field, connection),
            )
            for name, field in self.m2m.items()
        }

    def pk_from_json(self, raw: Any) -> Any:
        """The primary key of a dumped object that :meth:`checked_pk` has accepted."""
        column = self.pk_column
        return raw if type(raw) is column.python_type else column.to_python(raw)

    def checked_pk(self, raw: Any) -> Any:
        """The primary key of a dumped object; SchemaMismatchError for one the target's column
        cannot take. Each object's key is checked once, as the dump is spooled."""
        if raw is None:
            # A row without a key would be inserted under a new one, which delete_missing
            # then deletes along with the row the key was to name.
            raise SchemaMismatchError(
                f"{describe(self.model, raw)}: the object has no primary key; every dumped"
                " object needs one. Dump it again."
            )
        try:
            pk = self.pk_from_json(raw)
            _check_range(pk, self.pk_column.bounds)
            if pk == 0 and self.pk.get_internal_type().endswith("AutoField"):
                try:
                    self.connection.ops.validate_autopk_value(pk)  # MySQL refuses 0
                except ValueError as exc:
                    raise ValidationError(str(exc)) from None
        except ValidationError as exc:
            reason = "; ".join(exc.messages)
        except (TypeError, ValueError, OverflowError) as exc:
            reason = str(exc)
        else:
            return pk
        raise SchemaMismatchError(f"{describe(self.model, raw)}: invalid primary key ({reason}).")

    def row(self, data: dict[str, Any]) -> Row:
        """Turn a serialized object into Python values, as Django's deserializer would."""
        pk = self.pk_from_json(data["pk"])
        values: dict[str, Any] = {}
        m2m: dict[str, set[Any]] = {}
        by_name = self.by_name
        for name, raw in data.get("fields", {}).items():
            column = by_name.get(name)
            try:
                if column is not None:
                    if raw is None or type(raw) is column.python_type:
                        values[column.attname] = raw
                        bounds = column.bounds
                        # Inline, for speed: an int straight from JSON may not fit.
                        if type(raw) is int and bounds and not bounds[0] <= raw <= bounds[1]:
                            _check_range(raw, bounds)
                    elif isinstance(raw, list) and column.field.remote_field is not None:
                        values[column.attname] = self._reference(column.field.related_model, raw)
                    elif isinstance(raw, list) and name in self.generic:
                        values[column.attname] = Reference(None, raw)
                    else:
                        values[column.attname] = column.to_python(raw)
                        _check_range(values[column.attname], column.bounds)
                        if column.digits is not None:
                            column.digits.check(values[column.attname])
                elif name in self.m2m:
                    m2m[name] = self._targets(name, raw)
                elif not self.ignorenonexistent:
                    raise SchemaMismatchError(
                        f"{describe(self.model, pk)}: the dump has a field '{name}' that the"
                        " target model lacks. Migrate the target, or pass --ignorenonexistent"
                        " to skip such fields."
                    )
            except ValidationError as exc:
                raise SchemaMismatchError(
                    f"{describe(self.model, pk)}: field '{name}' has an invalid value {raw!r}"
                    f" ({'; '.join(exc.messages)})."
                ) from None
            except (TypeError, ValueError, OverflowError) as exc:
                # Some to_python() methods take strings only (a date given as a number), and
                # int() cannot take an infinite float (JSON's Infinity).
                raise SchemaMismatchError(
                    f"{describe(self.model, pk)}: field '{name}' has an invalid value {raw!r}"
                    f" ({exc})."
                ) from None
        for name, (attname, reason) in self._zero_refused.items():
            if values.get(attname) == 0:
                raise SchemaMismatchError(
                    f"{describe(self.model, pk)}: field '{name}' has an invalid value 0 ({reason})."
                )
        return Row(pk, values, m2m, data.get("identity"), False, pk)

    def _targets(self, name: str, raw: Any) -> set[Any]:
        if not isinstance(raw, list):
            raise ValidationError(f"expected a list of related keys, got {raw!r}")
        related, target, plain, bounds, zero_refused = self._m2m_targets[name]
        targets = {
            value
            if type(value) is plain
            else self._reference(related, value)
            if isinstance(value, list)
            else target.to_python(value)
            for value in raw
        }
        if bounds is not None:
            low, high = bounds
            for value in targets:
                if type(value) is int and not low <= value <= high:
                    _check_range(value, bounds)
        if zero_refused is not None and 0 in targets:
            raise ValidationError(zero_refused)
        return targets

    def _reference(self, related: type[models.Model], key: list[Any]) -> Reference:
        if related not in self._named:
            raise ValidationError(
                f"expected a primary key; {related._meta.label_lower} has no natural keys"
            )
        return Reference(related, key)


def from_db(
    columns: Sequence[Column], fetched: list[tuple[Any, ...]], connection: BaseDatabaseWrapper
) -> list[tuple[Any, ...]]:
    """Rows of ``columns`` as the database driver returned them, as Python values.

    Values come out as a ``values_list()`` query returns them, so that they compare with
    converted rows.
    """
    converters = [
        (index, column.from_db, column.expression)
        for index, column in enumerate(columns)
        if column.from_db
    ]
    if not converters or not fetched:
        return fetched
    # Column by column: a converter runs over a list, not a row at a time.
    by_column: list[Sequence[Any]] = list(zip(*fetched, strict=True))
    for index, functions, expression in converters:
        for function in functions:
            by_column[index] = [
                function(value, expression, connection) for value in by_column[index]
            ]
    return list(zip(*by_column, strict=True))
