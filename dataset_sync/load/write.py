"""The write stage: one model's dumped rows, a batch at a time, in bulk.

Per batch, :class:`TableWriter` converts the dumped objects into rows (``convert.py``),
applies the load flags of the specs that selected them, notes the references that point
outside the dump for the final check, asks the target keys (``keys.py``) where each row
lands, reads the existing rows once, and writes only what differs: new rows are inserted,
changed rows updated, many-to-many links added and removed. Which rows differ is decided by
:func:`compare` and :func:`link_changes`, pure functions of the dumped rows and what the
target holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, models, transaction
from django.db.models.signals import post_save, pre_save

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.load.backends import Backend
from dataset_sync.load.convert import Column, Row, RowConverter, describe, from_db
from dataset_sync.load.defer import DeferredValues
from dataset_sync.load.keys import TargetKeys
from dataset_sync.load.match import frozen
from dataset_sync.load.references import KEEP, ReferenceResolver
from dataset_sync.load.refused import HINT, first_refused, refused_link, refused_row
from dataset_sync.load.spool import Selection
from dataset_sync.load.unique import DeleteIfStale, UniqueValues
from dataset_sync.report import LoadReport
from dataset_sync.schema import has_db_default

Model = type[models.Model]
Log = Callable[[str], Any]
#: A many-to-many link: the primary keys of both ends.
Pair = tuple[Any, Any]
#: A relation of a dumped row: a foreign key, or a many-to-many field.
Relation = Any


def compare(
    rows: Iterable[Row], existing: Mapping[Any, tuple[Any, ...]], attnames: tuple[str, ...]
) -> tuple[list[Row], list[Row]]:
    """The rows to insert (the target lacks them) and to update (a dumped field differs).

    ``existing`` holds the target's rows by primary key, their values in ``attnames`` order;
    a row that carries only some fields is compared on those.
    """
    inserts: list[Row] = []
    updates: list[Row] = []
    for row in rows:
        current = existing.get(row.pk)
        if current is None:
            inserts.append(row)
        elif tuple(row.values) == attnames:
            # A row with every field, in the table's order, compares in one step.
            if tuple(row.values.values()) != current:
                updates.append(row)
        elif any(
            attname in row.values and row.values[attname] != value
            for attname, value in zip(attnames, current, strict=True)
        ):
            updates.append(row)
    return inserts, updates


def link_changes(
    rows: Iterable[Row], name: str, current: Mapping[Any, set[Any]]
) -> tuple[list[Pair], list[Pair]]:
    """The links of the many-to-many field ``name`` to add and to remove so that each row's
    are the dump's; ``current`` holds each row's links on the target."""
    add: list[Pair] = []
    remove: list[Pair] = []
    for row in rows:
        wanted, held = row.m2m[name], current.get(row.pk, set())
        add.extend((row.pk, target) for target in sorted(wanted - held, key=repr))
        remove.extend((row.pk, target) for target in sorted(held - wanted, key=repr))
    return add, remove


@dataclass
class Options:
    """What a load's caller chose, as far as the write stage is concerned."""

    ignorenonexistent: bool = False
    signals: bool = False
    log: Log | None = None


@dataclass
class Links:
    """A batch's changes to the links of one many-to-many field."""

    name: str
    add: list[Pair] = field(default_factory=list)
    remove: list[Pair] = field(default_factory=list)


class TableWriter:
    """Writes the dumped rows of one model, a batch at a time, writing only what differs."""

    def __init__(
        self,
        converter: RowConverter,
        backend: Backend,
        keys: TargetKeys,
        resolver: ReferenceResolver,
        selection: Selection,
        deferred: DeferredValues,
        delete_if_stale: DeleteIfStale,
        options: Options,
        chunk: int,
    ) -> None:
        self.converter = converter
        self.model = converter.model
        self.backend = backend
        self.using = backend.connection.alias
        self.keys = keys
        self.resolver = resolver
        self.selection = selection
        self.deferred = deferred
        self.options = options
        self.chunk = chunk
        specs = selection.specs_of(self.model)
        self.lenient = any(spec.ignore_missing_m2m for spec in specs)
        self.deferring = any(spec.defer_values for spec in specs)
        self.unique = UniqueValues(
            converter, backend, self.using, keys.same_key(self.model), delete_if_stale
        )
        # (field name, pk) of links that ignore_missing_m2m filtered to rows that exist; a
        # row deleted later takes such links along, so they are not checked at the end.
        self.unchecked_links: set[tuple[str, Any]] = set()
        #: Per relation: the values that dumped rows hold and that name no row of the dump,
        #: each with the first row holding it, for the final check (after the deletions: a
        #: row found on the target may be one that the load deletes). Values that name rows
        #: of the dump are left out: this load writes those rows, and a cascade that took
        #: one fails it. What remains is usually nothing.
        self.references: dict[Relation, dict[Any, Any]] = {}
        self._in_dump: dict[Relation, set[Any]] = {}
        relations: list[Any] = [
            field
            for field in [*converter.fields.values(), *converter.m2m.values()]
            if field.remote_field is not None and getattr(field, "db_constraint", True)
        ]
        for relation in relations:
            related = relation.related_model._meta
            self.references[relation] = {}
            if relation.target_field != related.pk:
                self._in_dump[relation] = set()
            elif keys.identified(related.concrete_model):
                # The target keys of the dumped rows written so far: parents come first.
                self._in_dump[relation] = keys.written(related.concrete_model)
            elif keys.identities.reference(related.model).kind == "pk":
                self._in_dump[relation] = keys.dumped(related.concrete_model)
            else:
                # References by natural key: resolved to rows found on the target.
                del self.references[relation]
        self._link_columns = {
            name: (
                Column(through._meta.get_field(m2m.m2m_field_name()), converter.connection),
                Column(through._meta.get_field(m2m.m2m_reverse_field_name()), converter.connection),
            )
            for name, m2m in converter.m2m.items()
            for through in [m2m.remote_field.through]
        }

    def write(self, batch: list[dict[str, Any]], report: LoadReport) -> None:
        """Write one batch of dumped objects; count what happened in ``report``."""
        rows = [self.converter.row(data) for data in batch]
        if self.lenient:
            self.unchecked_links.update(self.resolver.drop_missing_links(self.model, rows))
        kept = self.resolver.resolve(self.model, rows, self.converter)
        self._record_references(rows)
        self.keys.locate(self.model, rows)
        self.keys.rewrite(self.model, rows)
        if self.deferring:
            self.deferred.defer(rows, self.model, self.selection, self.using)
        rows, new = self.keys.split(self.model, rows)
        existing = self._existing([row.pk for row in rows])
        if kept:
            self._keep_current(rows, existing)
            self._keep_current(new, {})
        unique = self.unique
        try:
            with transaction.atomic(using=self.using):
                unique.make_room(rows, existing)
                inserts, updates = compare(rows, existing, self.converter.attnames)
                links = self._link_changes(rows)
                # A vacated row inserted again was there before the load: it counts as updated.
                reinserted = {row.pk for row in inserts if row.pk in unique.vacated}
                created = [row for row in inserts if row.pk not in reinserted]
                created_pks = {row.pk for row in created}
                linked = {pk for change in links for pk, _ in (*change.add, *change.remove)}
                updated = {row.pk for row in updates} | reinserted | (linked - created_pks)
                instances = self._pre_save(rows, created_pks, updated)
                self._store(rows, inserts, updates)
        # ArithmeticError: a decimal the backend cannot quantize to the column's digits
        # (Django 4.2), raised while the parameters are built.
        except (DatabaseError, ArithmeticError) as exc:
            raise unique.explain(exc, rows) from exc
        for pk in reinserted:
            del unique.vacated[pk]
        self._link(links)
        self._post_save(instances)
        if new:
            self._insert_new(new)
            self._link(self._link_changes(new))
            created += new
        self.resolver.written(self.model, [*rows, *new])
        label = self.converter.label
        report.add(
            label,
            created=len(created),
            updated=len(updated),
            unchanged=len(rows) + len(new) - len(created) - len(updated),
        )
        if log := self.options.log:
            for row in created:
                log(f"created {describe(self.model, row.pk)}")
            for pk in sorted(updated, key=repr):
                log(f"updated {describe(self.model, pk)}")

    def _store(self, rows: list[Row], inserts: list[Row], updates: list[Row]) -> None:
        """Insert and update rows of the batch ``rows``; when the database refuses them, the
        error names the row, and the field or constraint.

        In a savepoint of its own, so that the rows the unique values moved out of the way
        (``make_room``) stay moved while the refused row is looked for.
        """
        try:
            with transaction.atomic(using=self.using):
                self._insert(inserts)
                self._update(updates)
        except (DatabaseError, ArithmeticError) as exc:
            inserted = {id(row) for row in inserts}

            def write(part: Sequence[Row]) -> None:
                self._insert([row for row in part if id(row) in inserted])
                self._update([row for row in part if id(row) not in inserted])

            raise self._refused(exc, rows, [*inserts, *updates], write) from exc

    def _refused(
        self,
        exc: Exception,
        rows: Sequence[Row],
        written: Sequence[Row],
        write: Callable[[Sequence[Row]], object],
    ) -> LoadIntegrityError:
        """Name the row behind ``exc``, which ``write`` raised for the rows ``written`` of the
        batch ``rows``: one whose unique value another row holds, or else the first that the
        database refuses when written again, part by part."""
        duplicate = self.unique.duplicate(rows)
        if duplicate is not None:
            return duplicate
        found = first_refused(written, write, self.using)
        if found is None:
            return self.unique.explain(exc, rows)
        row, error = found
        return refused_row(self.model, row.dumped, row.values, self.backend.refusal(error))

    def _record_references(self, rows: list[Row]) -> None:
        for relation, holders in self.references.items():
            in_dump = self._in_dump[relation]
            if relation.many_to_many:
                name = relation.name
                for row in rows:
                    if name in row.m2m and (name, row.pk) not in self.unchecked_links:
                        for value in row.m2m[name] - in_dump:
                            holders.setdefault(value, row.pk)
                continue
            attname = relation.attname
            for row in rows:
                value = row.values.get(attname)
                if value is not None and value is not KEEP and value not in in_dump:
                    holders.setdefault(value, row.pk)

    def _keep_current(self, rows: list[Row], existing: Mapping[Any, tuple[Any, ...]]) -> None:
        """Fill in the target's current values where a reference keeps them, NULL for rows the
        target does not have; a field that cannot be NULL is an error then."""
        attnames = self.converter.attnames
        for row in rows:
            for attname, value in row.values.items():
                if value is not KEEP:
                    continue
                current = existing.get(row.pk)
                if current is not None:
                    row.values[attname] = current[attnames.index(attname)]
                elif self.converter.fields_by_attname[attname].null:
                    row.values[attname] = None
                else:
                    field = self.converter.fields_by_attname[attname]
                    raise LoadIntegrityError(
                        f"{describe(self.model, row.pk)}: field '{field.name}' names a row that"
                        " is not on the target yet, and the field cannot be NULL until it is."
                        " Load that row first (in a dump of its own), or make the field"
                        " nullable."
                    )

    def _existing(self, pks: Sequence[Any]) -> dict[Any, tuple[Any, ...]]:
        """The rows of ``pks`` that the table holds: pk -> values in ``attnames`` order."""
        columns = self.converter.columns
        pk_column = self.converter.pk_column
        fetched = self.backend.select(
            self.model._meta.db_table,
            [column.column for column in columns],
            pk_column.column,
            [pk_column.db(pk) for pk in pks],
        )
        return {
            values[0]: values[1:] for values in from_db(columns, fetched, self.converter.connection)
        }

    def _insert(self, rows: list[Row], with_keys: bool = True) -> None:
        """Insert ``rows``; without their keys when the database generates them."""
        if not rows:
            return
        columns = self.converter.columns
        defaults = {column.attname: column.field.get_default() for column in columns[1:]}
        # A field the dump lacks (the target is ahead of it) whose default only the database
        # knows (db_default) is left out of the insert, so that the database fills it in.
        database_defaults = {
            column.attname
            for column in columns[1:]
            if has_db_default(column.field) and not column.field.has_default()
        }
        pk_db = self.converter.pk_column.db
        vacated = self.unique.vacated
        # Per column: the types whose values are their own parameters, and the conversion.
        plan = [(column.attname, column.db_types, column.to_db) for column in columns[1:]]
        # Rows by the columns they leave out: one statement per group.
        groups: dict[frozenset[str], list[list[Any]]] = {}
        for row in rows:
            values = row.values
            left_out: frozenset[str] = frozenset()
            if len(values) < len(plan):
                # Fields the dump does not carry: a vacated row's own, or the defaults.
                own = vacated.get(row.pk)
                if own is None:
                    left_out = frozenset(database_defaults.difference(values))
                values = {**(defaults if own is None else own), **values}
            converted = [
                value if type(value) in db_types else to_db(value)
                for attname, db_types, to_db in plan
                if attname not in left_out
                for value in (values[attname],)
            ]
            groups.setdefault(left_out, []).append(
                [pk_db(row.pk), *converted] if with_keys else converted
            )
        for left_out, params in groups.items():
            names = [
                column.column
                for column in (columns if with_keys else columns[1:])
                if column.attname not in left_out
            ]
            self.backend.insert(self.model._meta.db_table, names, params)

    def _update(self, rows: list[Row]) -> None:
        groups: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            groups.setdefault(tuple(row.values), []).append(row)
        by_attname = {column.attname: column for column in self.converter.by_name.values()}
        pk_db = self.converter.pk_column.db
        for attnames, group in groups.items():
            if not attnames:
                continue
            columns = [by_attname[attname] for attname in attnames]
            self.backend.update(
                self.model._meta.db_table,
                [column.column for column in columns],
                self.converter.pk_column.column,
                [
                    [column.db(row.values[column.attname]) for column in columns] + [pk_db(row.pk)]
                    for row in group
                ],
            )

    def _insert_new(self, rows: list[Row]) -> None:
        """Insert rows that get their key from the target, and record the keys."""
        if self.keys.identified(self.model):
            self._allocate(rows)
        else:
            self._copy(rows)

    def _copy(self, rows: list[Row]) -> None:
        """Insert copies (``save_as_new``) one by one, as ``loaddata`` saves.

        ``save_base(raw=True)``: no parents, no ``auto_now``, the dumped values as they are,
        and ``pre_save`` and ``post_save`` sent with ``raw=True``; the database hands out the
        keys.
        """
        objs = {id(row): self.model(**row.values) for row in rows}

        def save(part: Sequence[Row]) -> None:
            for row in part:
                objs[id(row)].save_base(raw=True, force_insert=True, using=self.using)

        try:
            with transaction.atomic(using=self.using):
                save(rows)
        except DatabaseError as exc:
            raise (
                self.unique.copied_duplicate(rows) or self._refused(exc, rows, rows, save)
            ) from exc
        self.keys.allocated(self.model, rows, [objs[id(row)].pk for row in rows])

    def _allocate(self, rows: list[Row]) -> None:
        """Insert rows whose identity the target does not have, in bulk, under new keys.

        A key the database generates is read back by the rows' identities, which are unique;
        a key with a default (a random number, a UUID) is made here.
        """
        pk = self.converter.pk
        generated = getattr(pk, "db_returning", False)
        if not generated:
            if not pk.has_default():
                raise LoadIntegrityError(
                    f"{self.converter.label}: rows the target does not have need new keys, but"
                    f" its primary key '{pk.name}' is neither generated by the database nor"
                    " has a default. Give it a default, or match the model by primary key."
                )
            for row in rows:
                row.pk = pk.get_default()
        instances = self._pre_save(rows, {row.pk for row in rows}, set())

        def insert(part: Sequence[Row]) -> None:
            self._insert(list(part), with_keys=not generated)

        try:
            with transaction.atomic(using=self.using):
                insert(rows)
        except (DatabaseError, ArithmeticError) as exc:
            raise self._refused(exc, rows, rows, insert) from exc
        if generated:
            identities = [row.identity or [] for row in rows]
            found = self.keys.matcher.resolve(self.model, identities)
            keys = [found.get(frozen(identity)) for identity in identities]
            if None in keys:
                identity = identities[keys.index(None)]
                raise LoadIntegrityError(
                    f"{self.converter.label}: the row inserted with identity {identity!r} cannot"
                    " be found by it again; check that the identity fields' collation compares"
                    " values exactly."
                )
        else:
            keys = [row.pk for row in rows]
        self.keys.allocated(self.model, rows, keys)
        if instances:
            for (instance, _created), key in zip(instances, keys, strict=True):
                instance.pk = key
            self._post_save(instances)

    def _link_changes(self, rows: list[Row]) -> list[Links]:
        """Per many-to-many field: the links to add and to remove to match the dump's."""
        changes = []
        for name, m2m in self.converter.m2m.items():
            dumped = [row for row in rows if name in row.m2m]
            if not dumped:
                continue
            source, target = self._link_columns[name]
            current: dict[Any, set[Any]] = {row.pk: set() for row in dumped}
            fetched = self.backend.select(
                m2m.remote_field.through._meta.db_table,
                [source.column, target.column],
                source.column,
                [source.db(pk) for pk in current],
            )
            connection = self.converter.connection
            for source_pk, target_pk in from_db([source, target], fetched, connection):
                current[source_pk].add(target_pk)
            add, remove = link_changes(dumped, name, current)
            changes.append(Links(name, add, remove))
        return changes

    def _link(self, changes: list[Links]) -> None:
        """Add and remove the links :meth:`_link_changes` found."""
        for change in changes:
            if change.add or change.remove:
                self._set_links(change)

    def _set_links(self, change: Links) -> None:
        m2m = self.converter.m2m[change.name]
        source, target = self._link_columns[change.name]
        through = m2m.remote_field.through._meta.db_table
        columns = [source.column, target.column]
        # (whether to add it, the link), in the order they are written.
        links = [(True, pair) for pair in change.add] + [(False, pair) for pair in change.remove]

        def write(part: Sequence[tuple[bool, Pair]]) -> None:
            self.backend.insert(
                through,
                columns,
                [(source.db(pk), target.db(other)) for add, (pk, other) in part if add],
            )
            self.backend.delete(
                through,
                columns,
                [(source.db(pk), target.db(other)) for add, (pk, other) in part if not add],
            )

        try:
            with transaction.atomic(using=self.using):
                write(links)
        except DatabaseError as exc:
            found = first_refused(links, write, self.using)
            if found is None:
                raise LoadIntegrityError(
                    f"{self.converter.label}: setting '{change.name}' was refused by the"
                    f" target database ({self.backend.refusal(exc).message}). {HINT}"
                ) from exc
            (_add, pair), error = found
            refusal = self.backend.refusal(error)
            raise refused_link(self.model, change.name, pair, refusal) from exc

    def set_column(self, attname: str, pairs: list[Pair]) -> None:
        """Set the column of ``attname`` of each row (pk, value) of ``pairs``."""
        converter = self.converter
        column = next(c for c in converter.by_name.values() if c.attname == attname)

        def write(part: Sequence[Pair]) -> None:
            self.backend.update(
                self.model._meta.db_table,
                [column.column],
                converter.pk_column.column,
                [[column.db(value), converter.pk_column.db(pk)] for pk, value in part],
            )

        try:
            with transaction.atomic(using=self.using):
                write(pairs)
        except DatabaseError as exc:
            found = first_refused(pairs, write, self.using)
            (pk, value), error = found if found is not None else (pairs[0], exc)
            refusal = self.backend.refusal(error)
            raise refused_row(self.model, pk, {attname: value}, refusal) from exc

    def link(self, name: str, pairs: list[Pair]) -> None:
        """Add the links (pk, related pk) of ``pairs`` to the many-to-many field ``name``."""
        self._link([Links(name, add=pairs)])

    def _post_save(self, instances: list[tuple[models.Model, bool]]) -> None:
        for instance, created in instances:
            post_save.send(
                self.model,
                instance=instance,
                created=created,
                raw=True,
                using=self.using,
                update_fields=None,
            )

    def _pre_save(
        self, rows: list[Row], created: set[Any], updated: set[Any]
    ) -> list[tuple[models.Model, bool]]:
        """Send pre_save for the rows about to be written; return their instances for post_save.

        Receivers get instances built from the dumped values, as loaddata's do.
        """
        if not self.options.signals:
            return []
        instances = [
            (self.model(pk=row.pk, **row.values), row.pk in created)
            for row in rows
            if row.pk in created or row.pk in updated
        ]
        for instance, _created in instances:
            pre_save.send(
                self.model, instance=instance, raw=True, using=self.using, update_fields=None
            )
        return instances


def correct_references(
    keys: TargetKeys,
    resolver: ReferenceResolver,
    writers: Mapping[Model, TableWriter],
    final: bool,
) -> None:
    """Write the target keys of references to rows written after their holders: after each
    batch, of those to the rows it wrote, so that memory holds no more than the references
    still waiting; once every row is in (``final``), the rest, the new keys where placeholders
    stand, and what the spec's policy says for references the target still lacks.

    Before the deletions: a placeholder may hold the key of a row they delete.
    """
    columns: dict[tuple[Model, str], list[Pair]] = defaultdict(list)
    links: dict[tuple[Model, str], list[Pair]] = defaultdict(list)
    if final:
        for placeholder, value in keys.placeholders():
            group = links if placeholder.many else columns
            group[(placeholder.model, placeholder.field)].append((placeholder.row.pk, value))
    resolved, unresolved = resolver.corrections(final)
    for pending, value in resolved:
        group = links if pending.many else columns
        group[(pending.model, pending.field)].append((pending.row.pk, value))
    for pending in unresolved:
        if pending.policy == "refuse":
            name = pending.field
            if not pending.many:
                name = writers[pending.model].converter.fields_by_attname[name].name
            raise resolver.missing(pending.model, pending.row.dumped, name, pending.reference)
        if pending.policy == "set_null":
            columns[(pending.model, pending.field)].append((pending.row.pk, None))
    for (model, attname), pairs in columns.items():
        writers[model].set_column(attname, pairs)
    for (model, name), pairs in links.items():
        writers[model].link(name, pairs)
