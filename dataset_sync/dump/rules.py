"""Data rules: what a dump holds for a personal field instead of its value.

A rule replaces one field's value while the dump is written: ``blank()``, ``null()``,
``fixed(value)``, ``keep()``, ``unique_email()``, ``unique_username()``, ``unique_phone()``
(derived from the primary key), ``hashed()`` (keyed with a secret), ``fake(kind)`` (Faker, or
text of the original length) and ``custom(function)``. Every rule is deterministic per
(model, primary key, field), so dumping twice gives the same objects and loading the second
dump writes nothing. ``kinds.py`` says how each is computed.

Rules are declared at three levels, and the most specific one wins: a spec's ``rules`` (field
names of its model), a dataset's ``rules`` (``register(name, rules=...)``) and the project's
DATASET_SYNC_RULES. Keys of the last two are ``"app_label.model.field"``, a field name, or a
field class; within one level a model's field beats a field name, which beats a field class
(the most derived class first). Values are rules, rule names (``"unique_email"``,
``"fake:name"``) or functions.

A target that requires scrubbed dumps checks a dump's header with :func:`require`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from dataset_sync import conf, registry
from dataset_sync.dump.kinds import (
    PERSONAL,
    Blank,
    Convert,
    Custom,
    Derived,
    Fake,
    Fixed,
    Hashed,
    Keep,
    Named,
    Null,
    Rule,
)
from dataset_sync.errors import UnscrubbedDumpError
from dataset_sync.specs import Spec

if TYPE_CHECKING:
    from dataset_sync.format import Header

#: A function from an instance to a copy with rules applied.
Scrub = Callable[[models.Model], models.Model]

__all__ = [
    "Resolution",
    "Rule",
    "blank",
    "custom",
    "fake",
    "fixed",
    "hashed",
    "keep",
    "null",
    "require",
    "resolve",
    "to_rule",
    "unique_email",
    "unique_phone",
    "unique_username",
]


def keep() -> Rule:
    """Dump the field as it is: says that it was not forgotten (the check stops warning)."""
    return Keep()


def blank() -> Rule:
    """An empty string, for text and file fields."""
    return Blank()


def null() -> Rule:
    """NULL, for nullable fields."""
    return Null()


def fixed(value: Any) -> Rule:
    """The same value for every row, such as ``"!"`` (an unusable password)."""
    return Fixed(value)


def unique_email(template: str = "{model}-{pk}@example.invalid") -> Rule:
    """``user-42@example.invalid``: unique because the key is; NULL stays NULL.

    ``{pk}`` is the primary key, ``{model}`` the model's name, ``{field}`` the field's.
    ``.invalid`` is a reserved domain, so a mail to it never leaves.
    """
    return Derived("unique_email", template)


def unique_username(template: str = "{model}-{pk}") -> Rule:
    """``user-42``: unique because the key is; NULL stays NULL."""
    return Derived("unique_username", template)


def unique_phone(template: str = "+999 {pk}") -> Rule:
    """``+999 42``: unique because the key is; +999 is no country's calling code."""
    return Derived("unique_phone", template)


def hashed(length: int | None = None) -> Rule:
    """The hex SHA-256 of the value keyed with DATASET_SYNC_RULES_SECRET (else SECRET_KEY).

    Equal values stay equal (within and across tables) and distinct ones distinct, so it
    fits unique fields; without the secret, a dictionary of likely values cannot reverse it.
    Cut to ``length`` or the field's max_length when shorter than 64.
    """
    return Hashed(length)


def fake(kind: str, locale: str | None = None) -> Rule:
    """A fake value: ``"text"`` (lorem ipsum of the original's length) or a Faker provider.

    ``fake("name")``, ``fake("address")``, ``fake("date_of_birth")``, ...: Faker is optional
    (``pip install 'dataset-sync[faker]'``). Fake values repeat, so unique fields need
    another rule.
    """
    return Fake(kind, locale)


def custom(function: Convert, name: str | None = None) -> Rule:
    """``function(value, pk)`` computes the value dumped, in Python.

    It must be deterministic: the same value and key give the same result. ``name`` is how
    the dump names it; by default the function's module and qualified name.
    """
    return Custom(function, name or f"{function.__module__}.{function.__qualname__}")


#: The rules a declaration may name by a string; ``"fake:KIND"`` and ``"fake:KIND:LOCALE"`` too.
_NAMED: dict[str, Callable[[], Rule]] = {
    "keep": keep,
    "blank": blank,
    "null": null,
    "hashed": hashed,
    "unique_email": unique_email,
    "unique_username": unique_username,
    "unique_phone": unique_phone,
}


def to_rule(value: Any) -> Rule | None:
    """A rule from a declaration: a Rule, a rule's name, or a function; None for others.

    A name that is no rule (one read from a dump, such as ``fixed``, or a typo) gives a
    rule known only by its name, which cannot be applied.
    """
    if isinstance(value, Rule):
        return value
    if isinstance(value, str):
        if value in _NAMED:
            return _NAMED[value]()
        prefix, _colon, rest = value.partition(":")
        kind, _colon, locale = rest.partition(":")
        if prefix == "fake" and kind:
            return Fake(kind, locale or None)
        return Named(value)
    if callable(value):
        return custom(value)
    return None


# --- Declarations: which rule applies to which field. ------------------------------------


@dataclass
class _Level:
    """The rules of one level of declarations (a dataset's, or DATASET_SYNC_RULES)."""

    fields: dict[tuple[str, str], tuple[Rule, str]] = field(default_factory=dict)
    names: dict[str, tuple[Rule, str]] = field(default_factory=dict)
    types: dict[type, tuple[Rule, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def lookup(self, labels: Iterable[str], found: Any) -> tuple[Rule, str] | None:
        for label in labels:
            if (label, found.name) in self.fields:
                return self.fields[label, found.name]
        if found.name in self.names:
            return self.names[found.name]
        for cls in type(found).__mro__:
            if cls in self.types:
                return self.types[cls]
        return None


def _level(declared: Any, where: str) -> _Level:
    level = _Level()
    if not isinstance(declared, Mapping):
        level.problems.append(
            f"{where} must be a dict of fields to rules, not {type(declared).__name__}."
        )
        return level
    for key, value in declared.items():
        source = f"{where}[{key.__name__}]" if isinstance(key, type) else f"{where}[{key!r}]"
        rule = to_rule(value)
        if rule is None:
            level.problems.append(
                f"{source} must be a rule, a rule name or a function, not {value!r}."
            )
        elif isinstance(key, type) and issubclass(key, models.Field):
            level.types[key] = (rule, source)
        elif isinstance(key, str) and key.count(".") == 2:
            label, _dot, name = key.rpartition(".")
            if problem := _missing(label.lower(), name):
                level.problems.append(f"{source}: {problem}")
            else:
                level.fields[label.lower(), name] = (rule, source)
        elif isinstance(key, str) and key and "." not in key:
            level.names[key] = (rule, source)
        else:
            level.problems.append(
                f"{source}: the key is neither a field name, nor 'app_label.model.field', nor"
                " a field class."
            )
    return level


def _missing(label: str, name: str) -> str | None:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return f"'{label}' is not an installed model."
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return f"{label} has no field '{name}'."
    return None


def project_problems() -> list[str]:
    """What is wrong with DATASET_SYNC_RULES itself (keys, values)."""
    return _level(conf.rules_setting(), "DATASET_SYNC_RULES").problems


@dataclass
class Resolution:
    """The data rules of one dump: the rule of each field of each spec that has one.

    ``rules[i]`` maps field names of spec ``i`` to their rules (``keep`` left out);
    ``header`` maps model labels to field names to rule names, as the dump's header says.
    ``problems`` are reasons the rules cannot be applied as declared, ``unruled`` the
    personal fields (text, email, IP, JSON, file) with no rule and no keep.
    """

    rules: list[dict[str, Rule]] = field(default_factory=list)
    header: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unruled: list[tuple[str, Any]] = field(default_factory=list)
    dataset_rules: Mapping[Any, Any] = field(default_factory=dict)
    by_label: dict[str, dict[str, Rule]] = field(default_factory=dict)

    def of_model(self, model: type[models.Model]) -> dict[str, Rule]:
        """The rules of ``model``'s fields in this dump, for rows dumped rows refer to.

        A model that specs select has their rules. A model that none selects, whose rows
        are referred to by natural key, gets the dataset's and the project's: the target's
        rows of that model came from dumps scrubbed the same way, and the dump must not
        name a row by the values the rules replace.
        """
        label = model._meta.label_lower
        if label not in self.by_label:
            found = resolve([Spec(label)], self.dataset_rules, check=False)
            self.by_label[label] = found.rules[0]
        return self.by_label[label]


def resolve(
    specs: Sequence[Spec], dataset_rules: Mapping[Any, Any], *, check: bool = True
) -> Resolution:
    """The rules each field of ``specs`` gets from the spec, ``dataset_rules`` and the project.

    With ``check``, also whether each rule can apply to its field (which may ask Faker);
    without it, only the names count (the loader compares them with a dump's).
    """
    levels = [
        _level(dataset_rules, "the dataset's rules"),
        _level(conf.rules_setting(), "DATASET_SYNC_RULES"),
    ]
    resolution = Resolution(problems=list(levels[0].problems), dataset_rules=dataset_rules)
    unruled: dict[tuple[str, str], Any] = {}
    for spec in specs:
        model = spec.get_model()
        meta = (model._meta.concrete_model or model)._meta
        labels = dict.fromkeys((spec.model, meta.label_lower))
        rules: dict[str, Rule] = {}
        names: dict[str, str] = {}
        fields: list[Any] = list(meta.local_fields)
        for found in fields:
            if not found.serialize:
                continue
            if found.name in spec.rules:
                declared: tuple[Rule, str] | None = (spec.rules[found.name], "the spec's rules")
            else:
                declared = levels[0].lookup(labels, found) or levels[1].lookup(labels, found)
            if declared is None:
                if _personal(found):
                    unruled[spec.model, found.name] = found
                continue
            rule, source = declared
            if check and (problem := _problem(rule, found, meta)):
                resolution.problems.append(
                    f"{spec.model}.{found.name}: rule '{rule.name}' ({source}) {problem}"
                )
            if not isinstance(rule, Keep):
                rules[found.name] = rule
                names[found.name] = rule.name
        resolution.rules.append(rules)
        for label in labels:
            # A proxy's rows are its concrete model's, which relations name.
            resolution.by_label.setdefault(label, rules)
        if spec.model in resolution.header and resolution.header[spec.model] != names:
            resolution.problems.append(
                f"{spec.model}: its specs declare different rules"
                f" ({_describe(resolution.header[spec.model])} and {_describe(names)}); declare"
                " the same rules for every spec of a model."
            )
        elif names:
            resolution.header[spec.model] = names
    resolution.unruled = [(label, found) for (label, _name), found in unruled.items()]
    return resolution


def _describe(names: Mapping[str, str]) -> str:
    return ", ".join(f"{name}: {rule}" for name, rule in names.items()) or "none"


def _personal(found: Any) -> bool:
    return (
        isinstance(found, PERSONAL)
        and not found.primary_key
        and found.remote_field is None
        and not found.choices
    )


def _problem(rule: Rule, found: Any, meta: Any) -> str | None:
    if isinstance(rule, Keep):
        return None
    # NULL names no row, so it is the one value a rule may give a (nullable) foreign key.
    nulled = isinstance(rule, Null) and found.null and found.concrete
    if found.primary_key or (found.remote_field is not None and not nulled):
        return (
            "cannot apply: rules cannot rewrite primary keys or relations, except null on a"
            " nullable foreign key. Use keep."
        )
    if problem := rule.problem(found):
        return problem
    if not rule.keeps_unique and _unique(found, meta):
        return (
            "would break a unique constraint of the field, since its values repeat. Use"
            " hashed, a unique_* rule, null, keep or a custom rule there."
        )
    return None


def _unique(found: Any, meta: Any) -> bool:
    if found.unique:
        return True
    together = [list(fields) for fields in meta.unique_together]
    together += [
        list(constraint.fields)
        for constraint in meta.constraints
        if isinstance(constraint, models.UniqueConstraint)
    ]
    return any(found.name in fields for fields in together)


# --- The target's side: refusing dumps that were not scrubbed as declared. --------------


def require(header: Header, specs: Sequence[Spec]) -> None:
    """Refuse a dump that DATASET_SYNC_REQUIRE_RULES requires to be scrubbed, unless its header
    names every rule this database declares for its specs (``keep`` aside).

    ``specs`` are the specs the load uses. A dump may have more rules than declared here, not
    fewer or others. UnscrubbedDumpError names the dataset and each difference.
    """
    required = conf.required_rules()
    if not (required is True or (required and header.dataset in required)):
        return
    dataset = registry.datasets().get(header.dataset) if header.dataset else None
    expected = resolve(specs, dataset.rules if dataset else {}, check=False).header
    dumped = header.rules or {}
    differences = [
        f"{label}.{name}: {dumped.get(label, {}).get(name) or 'no rule'} in the dump, {rule} here"
        for label, names in expected.items()
        for name, rule in names.items()
        if dumped.get(label, {}).get(name) != rule
    ]
    if not differences:
        return
    what = f"dataset '{header.dataset}'" if header.dataset else "a dump that names no dataset"
    raise UnscrubbedDumpError(
        f"this database loads {what} only as dumped with the data rules declared here"
        f" (DATASET_SYNC_REQUIRE_RULES), and the dump's rules differ: {'; '.join(differences)}."
        " Declare the same rules where the dump is made and dump it again."
    )


def scrubber(model: type[models.Model], rules: Mapping[str, Rule]) -> Scrub:
    """A function from an instance of ``model`` to a copy with ``rules`` applied, in Python.

    For instances that were not read by the dumper's query: objects a caller hands in, and
    rows whose natural key a dumped row refers to, which must name the row as dumped.
    """
    if not rules:
        return _same
    fields: list[Any] = [model._meta.get_field(name) for name in rules]
    steps = [(field.attname, rules[field.name].python(field)) for field in fields]

    def scrub(obj: models.Model) -> models.Model:
        scrubbed = copy.copy(obj)
        for attname, convert in steps:
            setattr(scrubbed, attname, convert(getattr(obj, attname), obj.pk))
        return scrubbed

    return scrub


def _same(obj: models.Model) -> models.Model:
    return obj
