"""Data rules: what a dump holds for personal fields, the same on every database and in every
dump, and never the original values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import uuid
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError
from django.db import connections, models
from django.utils.crypto import salted_hmac

from dataset_sync import Dataset, Spec, dump, load, registry, rules
from dataset_sync.dump import kinds
from dataset_sync.errors import InvalidSpecError, UnscrubbedDumpError, UntrustedDumpError
from dataset_sync.feincms3_data import dump_specs
from dataset_sync.format import DumpWriter, Header
from testapp.models import Author, Category, Choice, Person, Question, Tag

from .conftest import WHEN, Statements, make_source, run

SECRET = "the source's rules secret"
ADA = uuid.UUID(int=0xA)
GRACE = uuid.UUID(int=0xB)
ZOE = "Zoë Ünïcode 😀 ‘quoted’"
#: The personal values of make_people(): none of them may appear in a scrubbed dump.
PERSONAL = [
    "Ada Lovelace",
    "ada.lovelace@analytical.example",
    "+44 20 7946 0018",
    "Countess",
    "Notes on the Analytical Engine, 1843.",
    "192.0.2.17",
    "ada@private.example",
    "avatars/ada-lovelace.png",
    "1815-12-10",
    "Grace Hopper",
    "grace.hopper@navy.example",
    ZOE,
]


@pytest.fixture(autouse=True)
def secret(settings):
    settings.DATASET_SYNC_RULES_SECRET = SECRET


def make_people(using="default"):
    Person.objects.using(using).create(
        id=ADA,
        name="Ada Lovelace",
        email="ada.lovelace@analytical.example",
        phone="+44 20 7946 0018",
        nickname="Countess",
        bio="Notes on the Analytical Engine, 1843.",
        ip="192.0.2.17",
        preferences={"mail": "ada@private.example"},
        avatar="avatars/ada-lovelace.png",
        born=dt.date(1815, 12, 10),
        status="left",
    )
    # No phone, nickname, IP or birthday: NULL stays NULL.
    Person.objects.using(using).create(
        id=GRACE, name="Grace Hopper", email="grace.hopper@navy.example", bio=ZOE
    )


def sha(value):
    """The documented ``hashed`` value: SHA-256 of a key derived from the secret, then the value."""
    key = salted_hmac("dataset_sync.rules.hashed", "", secret=SECRET).hexdigest()
    return hashlib.sha256((key + value).encode()).hexdigest()


def fields_of(text):
    """The objects of a dump: (model, pk) -> fields."""
    return {(obj["model"], obj["pk"]): obj["fields"] for obj in json.loads(text)["objects"]}


def dumped(dataset):
    stream = StringIO()
    dump(dataset, output=stream)
    return stream.getvalue()


def authors_dataset(**declared):
    """All authors, questions, choices, tags and categories, with ``declared`` rules."""
    return Dataset(
        "scrubbed-authors",
        lambda args: [
            Spec(f"testapp.{name}") for name in ("author", "question", "choice", "tag", "category")
        ],
        rules=declared,
    )


def make_pinned():
    """Authors with questions, choices, a tag and a category, under keys every database keeps."""
    Tag.objects.create(pk=1, name="python")
    news = Category.objects.create(pk=1, name="news")
    for author_id, name in ((1, "Author 1"), (2, ZOE)):
        author = Author.objects.create(pk=author_id, name=name, email=f"a{author_id}@example.com")
        for pk in (author_id * 10 + 1, author_id * 10 + 2):
            question = Question.objects.create(
                pk=pk, author=author, category=news, text=f"Question {pk}?", pub_date=WHEN
            )
            Choice.objects.create(pk=pk, question=question, text=f"Choice {pk}")


@pytest.mark.django_db
def test_rules_computed_by_the_database_give_the_same_values_on_every_database():
    """Pinned values, so SQLite, PostgreSQL and MariaDB write the same bytes."""
    make_pinned()
    dataset = authors_dataset(
        **{
            "testapp.author.name": "hashed",
            "testapp.author.email": rules.unique_email(),
            "testapp.question.text": rules.fake("text"),
            "testapp.choice.text": rules.blank(),
            "testapp.tag.name": rules.unique_username("tag {pk} of {model}.{field}"),
            "testapp.category.name": rules.hashed(length=12),
        }
    )

    text = dumped(dataset)

    when = "2026-01-02T03:04:05.678Z"
    assert [(obj["pk"], obj["fields"]) for obj in json.loads(text)["objects"]] == [
        (
            1,
            {
                "name": sha("Author 1"),
                "email": "author-1@example.invalid",
                "favorite_question": None,
            },
        ),
        (2, {"name": sha(ZOE), "email": "author-2@example.invalid", "favorite_question": None}),
        (11, {"author": 1, "category": 1, "text": "in aute ea q", "pub_date": when, "tags": []}),
        (12, {"author": 1, "category": 1, "text": "lorem laboru", "pub_date": when, "tags": []}),
        (21, {"author": 2, "category": 1, "text": "dolore sint ", "pub_date": when, "tags": []}),
        (22, {"author": 2, "category": 1, "text": "consectetur ", "pub_date": when, "tags": []}),
        (11, {"question": 11, "text": "", "votes": 0, "score": "0.00"}),
        (12, {"question": 12, "text": "", "votes": 0, "score": "0.00"}),
        (21, {"question": 21, "text": "", "votes": 0, "score": "0.00"}),
        (22, {"question": 22, "text": "", "votes": 0, "score": "0.00"}),
        (1, {"name": "tag 1 of tag.name"}),
        (1, {"name": sha("news")[:12]}),
    ]
    assert json.loads(text)["rules"] == {
        "testapp.author": {"name": "hashed", "email": "unique_email"},
        "testapp.question": {"text": "fake:text"},
        "testapp.choice": {"text": "blank"},
        "testapp.tag": {"name": "unique_username"},
        "testapp.category": {"name": "hashed"},
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "model", "name"),
    [
        (rules.hashed(), Author, "name"),
        (rules.hashed(length=10), Author, "email"),
        (rules.unique_email(), Author, "email"),
        (rules.unique_username("{field}:{pk}:{model}:{pk}"), Author, "name"),
        (rules.unique_phone(), Person, "phone"),
        (rules.fake("text"), Author, "name"),
        (rules.fake("text"), Person, "nickname"),
        (rules.fake("first_name"), Person, "nickname"),
    ],
)
def test_sql_and_python_give_the_same_values(rule, model, name):
    make_source()
    Author.objects.filter(pk=2).update(name=ZOE)
    make_people()
    field = model._meta.get_field(name)
    column = rule.column(field, connections["default"].vendor)

    read = model.objects.order_by("pk").values_list("pk", column.select or models.Value(None))
    by_sql = [column.convert(value, pk) if column.convert else value for pk, value in read]
    raw = model.objects.order_by("pk").values_list("pk", field.attname)
    by_python = [rule.python(field)(value, pk) for pk, value in raw]

    assert by_sql == by_python
    if model is Author:
        # An integer key and a plain text column: the database computes the value.
        assert not isinstance(column.select, str)


@pytest.mark.django_db
def test_a_database_without_the_sql_computes_the_rules_in_python():
    field = Author._meta.get_field("name")
    column = rules.hashed().column(field, "oracle")
    assert column.select == "name"
    assert column.convert("Ada", 1) == sha("Ada")


@pytest.mark.django_db
def test_every_personal_field_of_people_is_replaced():
    make_people()

    objects = fields_of(dumped("people"))

    ada, grace = objects["testapp.person", str(ADA)], objects["testapp.person", str(GRACE)]
    assert ada["email"] == "person-00000000-0000-0000-0000-00000000000a@example.invalid"
    assert ada["phone"] == sha("+44 20 7946 0018")[:30]
    assert (ada["ip"], ada["preferences"], ada["avatar"], ada["status"]) == (None, {}, "", "left")
    assert len(ada["bio"]) == len("Notes on the Analytical Engine, 1843.")
    assert len(grace["bio"]) == len(ZOE)
    assert set(ada["bio"] + grace["bio"]) <= set("abcdefghijklmnopqrstuvwxyz ")
    dt.date.fromisoformat(ada["born"])
    assert ada["name"] != grace["name"]
    assert isinstance(ada["nickname"], str)
    # NULL stays NULL: Grace has no phone, nickname or birthday.
    assert (grace["phone"], grace["nickname"], grace["born"]) == (None, None, None)


@pytest.mark.django_db
def test_no_original_value_of_a_scrubbed_field_appears_in_the_dump(tmp_path):
    make_people()
    path = tmp_path / "people.json"
    dump("people", output=path)
    text = path.read_text()
    for value in PERSONAL:
        assert value not in text
        assert json.dumps(value)[1:-1] not in text


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_dumping_twice_gives_the_same_objects_and_the_second_load_writes_nothing(tmp_path):
    make_people()
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    dump("people", output=first)
    dump("people", output=second)
    assert json.loads(first.read_text())["objects"] == json.loads(second.read_text())["objects"]
    assert json.loads(first.read_text())["sha256"] == json.loads(second.read_text())["sha256"]

    # The target holds both people after the first load: unique fields stayed unique.
    assert load(first, using="target").counts["testapp.person"].created == 2
    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        report = load(second, using="target")
    assert not report.changed
    assert statements.writes() == []
    emails = Person.objects.using("target").order_by("email").values_list("email", flat=True)
    assert list(emails) == [
        "person-00000000-0000-0000-0000-00000000000a@example.invalid",
        "person-00000000-0000-0000-0000-00000000000b@example.invalid",
    ]


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_rows_referred_to_by_natural_key_are_named_as_dumped(tmp_path):
    """A user's natural key is its username: references name the user by the scrubbed one."""
    group = Group.objects.create(name="secret editors")
    user = User.objects.create_user("ada.lovelace", first_name="Ada")
    user.groups.add(group)
    person = Person.objects.create(name="Ada", email="ada@example.org", account=user)
    dataset = Dataset(
        "accounts",
        lambda args: [Spec("auth.group"), Spec("auth.user"), Spec("testapp.person")],
        rules={"auth.user.username": "unique_username", "auth.group.name": "hashed"},
    )
    path = tmp_path / "accounts.json"

    dump(dataset, output=path)

    text = path.read_text()
    assert "ada.lovelace" not in text
    assert "secret editors" not in text
    objects = fields_of(text)
    assert objects["auth.user", user.pk]["groups"] == [[sha("secret editors")]]
    assert objects["testapp.person", str(person.pk)]["account"] == [f"user-{user.pk}"]
    load(path, using="target", trust_dump_specs=True)
    loaded = Person.objects.using("target").select_related("account").get()
    assert loaded.account.username == f"user-{user.pk}"


@pytest.mark.django_db
def test_references_to_a_model_no_spec_selects_follow_the_dataset_and_project_rules():
    user = User.objects.create_user("ada.lovelace")
    person = Person.objects.create(name="Ada", email="ada@example.org", account=user)
    dataset = Dataset(
        "people-only",
        lambda args: [Spec("testapp.person")],
        rules={"auth.user.username": "unique_username"},
    )
    objects = fields_of(dumped(dataset))
    assert objects["testapp.person", str(person.pk)]["account"] == [f"user-{user.pk}"]


@pytest.mark.django_db
def test_the_most_specific_declaration_wins(settings):
    make_source()
    question, choice, tag, category = (
        model.objects.order_by("pk").values_list("pk", flat=True)[0]
        for model in (Question, Choice, Tag, Category)
    )
    settings.DATASET_SYNC_RULES = {
        models.CharField: "blank",
        models.EmailField: "unique_email",  # a more derived class than CharField
        "text": rules.fixed("project text"),
        "testapp.choice.text": rules.fixed("project choice"),  # a model's field beats a name
        "testapp.tag.name": "keep",
        "testapp.category.name": "keep",
    }
    dataset = Dataset(
        "levels",
        lambda args: [
            Spec("testapp.author", filter={"pk": 1}),
            Spec("testapp.question", filter={"pk": question}),
            Spec("testapp.choice", filter={"pk": choice}),
            Spec("testapp.tag", filter={"pk": tag}, rules={"name": "keep"}),  # the spec wins
            Spec("testapp.category"),
        ],
        # The dataset's rules beat the project's, even a project rule for the model's field.
        rules={"testapp.question.text": rules.fixed("dataset question"), "name": "hashed"},
    )

    objects = fields_of(dumped(dataset))

    assert objects["testapp.author", 1]["name"] == sha("Author 1")
    assert objects["testapp.author", 1]["email"] == "author-1@example.invalid"
    assert objects["testapp.question", question]["text"] == "dataset question"
    assert objects["testapp.choice", choice]["text"] == "project choice"
    assert objects["testapp.tag", tag]["name"] == "python"
    assert objects["testapp.category", category]["name"] == sha("news")


@pytest.mark.django_db
def test_spec_rules_from_a_feincms3_data_style_dict_are_named_in_the_header():
    make_source()
    text = dumped(
        Dataset(
            "dicts",
            lambda args: [
                {"model": "testapp.author", "rules": {"email": "unique_email", "name": "keep"}}
            ],
        )
    )
    header = json.loads(text)
    assert header["specs"] == [
        {"model": "testapp.author", "rules": {"email": "unique_email", "name": "keep"}}
    ]
    # Kept fields are declared, not applied: the header's rules leave them out.
    assert header["rules"] == {"testapp.author": {"email": "unique_email"}}
    assert fields_of(text)["testapp.author", 1]["name"] == "Author 1"


@pytest.mark.django_db
def test_mappers_see_the_scrubbed_objects():
    make_source()
    seen = []

    def mapper(obj):
        seen.append(obj["fields"]["email"])
        return obj

    dump(
        Dataset(
            "mapped",
            lambda args: [Spec("testapp.author")],
            {"testapp.author": mapper},
            {"email": "unique_email"},
        ),
        output=StringIO(),
    )
    assert seen == ["author-1@example.invalid", "author-2@example.invalid"]


@pytest.mark.django_db
def test_custom_rules_get_the_value_and_the_key():
    make_source()

    def initials(value, pk):
        return f"{value[0]}. ({pk})"

    text = dumped(authors_dataset(**{"testapp.author.name": initials}))
    assert fields_of(text)["testapp.author", 2]["name"] == "A. (2)"
    assert json.loads(text)["rules"]["testapp.author"] == {
        "name": "tests.test_rules.test_custom_rules_get_the_value_and_the_key.<locals>.initials"
    }
    named = rules.custom(initials, name="initials")
    assert json.loads(dumped(authors_dataset(name=named)))["rules"]["testapp.author"] == {
        "name": "initials"
    }


@pytest.mark.django_db
def test_feincms3_data_dump_specs_of_objects_applies_the_rules():
    make_people()
    people = list(Person.objects.order_by("pk"))
    data = json.loads(
        dump_specs(
            [{"model": "testapp.person", "rules": {"email": "unique_email"}}], objects=people
        )
    )
    assert [obj["fields"]["email"] for obj in data["objects"]] == [
        f"person-{ADA}@example.invalid",
        f"person-{GRACE}@example.invalid",
    ]
    # The caller's objects are not changed.
    assert people[0].email == "ada.lovelace@analytical.example"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            {"testapp.person.email": rules.fake("email")},
            "Dataset 'broken': testapp.person.email: rule 'fake:email' (the dataset's"
            " rules['testapp.person.email']) would break a unique constraint of the field,"
            " since its values repeat. Use hashed, a unique_* rule, null, keep or a custom rule"
            " there.",
        ),
        (
            {"phone": rules.unique_phone()},
            "Dataset 'broken': testapp.person.phone: rule 'unique_phone' (the dataset's"
            " rules['phone']) cannot apply: its values can be 41 characters long with keys of"
            " 36, and the field holds 30. Use a shorter template, or hashed.",
        ),
        (
            {"name": "null"},
            "Dataset 'broken': testapp.person.name: rule 'null' (the dataset's rules['name'])"
            " cannot apply: the field is not nullable. Use blank or fixed.",
        ),
        (
            {models.DateField: "blank"},
            "Dataset 'broken': testapp.person.born: rule 'blank' (the dataset's"
            " rules[DateField]) cannot apply: only text and file fields can be blank. Use null"
            " or fixed.",
        ),
        (
            {"born": rules.fixed("soon")},
            "Dataset 'broken': testapp.person.born: rule 'fixed' (the dataset's rules['born'])"
            " cannot apply: the field cannot hold 'soon' (“soon” value has an invalid date"
            " format. It must be in YYYY-MM-DD format.).",
        ),
        (
            {"name": "unqiue_email"},
            "Dataset 'broken': testapp.person.name: rule 'unqiue_email' (the dataset's"
            " rules['name']) is not a rule: use blank, hashed, keep, null, unique_email,"
            " unique_phone, unique_username, fake:KIND, or a rule object.",
        ),
        (
            {"name": rules.fake("no_such_provider")},
            "Dataset 'broken': testapp.person.name: rule 'fake:no_such_provider' (the"
            " dataset's rules['name']) cannot make values: Faker cannot make"
            " 'no_such_provider' ('Generator' object has no attribute 'no_such_provider').",
        ),
        (
            {"testapp.person.born": rules.fake("name")},
            "Dataset 'broken': testapp.person.born: rule 'fake:name' (the dataset's"
            " rules['testapp.person.born']) cannot apply: the field cannot hold what Faker"
            " makes, such as 'Austin Wilson' (“Austin Wilson” value has an invalid date format."
            " It must be in YYYY-MM-DD format.).",
        ),
        (
            {"testapp.person.nikname": "blank"},
            "Dataset 'broken': the dataset's rules['testapp.person.nikname']: testapp.person has"
            " no field 'nikname'.",
        ),
        (
            {"testapp.people.name": "blank"},
            "Dataset 'broken': the dataset's rules['testapp.people.name']: 'testapp.people' is"
            " not an installed model.",
        ),
        (
            {"person.name": "blank"},
            "Dataset 'broken': the dataset's rules['person.name']: the key is neither a field"
            " name, nor 'app_label.model.field', nor a field class.",
        ),
        (
            {"born": rules.unique_email()},
            "Dataset 'broken': testapp.person.born: rule 'unique_email' (the dataset's"
            " rules['born']) cannot apply: only text fields can hold the values it makes.",
        ),
        (
            {"born": "hashed"},
            "Dataset 'broken': testapp.person.born: rule 'hashed' (the dataset's rules['born'])"
            " cannot apply: only text fields can hold a hash.",
        ),
        (
            {"born": rules.fake("text")},
            "Dataset 'broken': testapp.person.born: rule 'fake:text' (the dataset's"
            " rules['born']) cannot apply: only text fields can hold text.",
        ),
        (
            {"name": 42},
            "Dataset 'broken': the dataset's rules['name'] must be a rule, a rule name or a"
            " function, not 42.",
        ),
    ],
)
def test_rules_that_cannot_apply_refuse_the_dump(tmp_path, declared, message):
    make_people()
    dataset = Dataset("broken", lambda args: [Spec("testapp.person")], rules=declared)
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(dataset, output=tmp_path / "dump.json")
    assert str(excinfo.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_rules_on_relations_and_conflicting_specs_refuse_the_dump(tmp_path):
    relation = Dataset("broken", lambda args: [Spec("testapp.question")], rules={"author": "null"})
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(relation, output=tmp_path / "dump.json")
    assert str(excinfo.value) == (
        "Dataset 'broken': testapp.question.author: rule 'null' (the dataset's rules['author'])"
        " cannot apply: rules cannot rewrite primary keys or relations, except null on a"
        " nullable foreign key. Use keep."
    )
    conflict = [
        Spec("testapp.author", filter={"pk": 1}, rules={"name": "hashed"}),
        Spec("testapp.author", filter={"pk": 2}),
    ]
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(specs=conflict, output=tmp_path / "dump.json")
    assert str(excinfo.value) == (
        "testapp.author: its specs declare different rules (name: hashed and none); declare"
        " the same rules for every spec of a model."
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_null_on_a_nullable_foreign_key_dumps_no_reference(tmp_path):
    author = Author.objects.create(name="Ada", email="ada@example.com")
    question = Question.objects.create(author=author, text="Engine?", pub_date=WHEN)
    author.favorite_question = question
    author.save()
    dataset = Dataset(
        "favourites",
        lambda args: [Spec("testapp.author"), Spec("testapp.question")],
        rules={"favorite_question": "null"},
    )
    path = tmp_path / "dump.json"
    dump(dataset, output=path)
    load(path, using="target", trust_dump_specs=True)

    dumped = json.loads(path.read_text())["objects"]
    assert [
        obj["fields"]["favorite_question"] for obj in dumped if obj["model"] == "testapp.author"
    ] == [None]
    loaded = Author.objects.using("target").get()
    assert (loaded.name, loaded.favorite_question_id) == ("Ada", None)
    assert Question.objects.using("target").get().author_id == loaded.pk


@pytest.mark.django_db
def test_without_faker_a_fake_rule_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faker", None)  # what `import faker` sees when it is missing
    kinds._faker.cache_clear()
    kinds._pool.cache_clear()
    try:
        with pytest.raises(InvalidSpecError) as excinfo:
            dump("people", output=tmp_path / "dump.json")
    finally:
        kinds._faker.cache_clear()
        kinds._pool.cache_clear()
    assert str(excinfo.value) == (
        "Dataset 'people': testapp.person.name: rule 'fake:name' (the dataset's"
        " rules['testapp.person.name']) needs Faker, which is not installed: pip install"
        " 'dataset-sync[faker]'."
    )


@pytest.mark.django_db
def test_strict_mode_refuses_to_dump_personal_fields_without_a_rule(tmp_path, settings):
    settings.DATASET_SYNC_RULES = {}
    settings.DATASET_SYNC_RULES_STRICT = True
    dataset = Dataset(
        "strict",
        lambda args: [Spec("testapp.tag"), Spec("testapp.author")],
        rules={"email": "keep"},
    )
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(dataset, output=tmp_path / "dump.json")
    assert str(excinfo.value) == (
        "Dataset 'strict': DATASET_SYNC_RULES_STRICT refuses to dump fields that have no data"
        " rule: testapp.tag.name, testapp.author.name. Declare a rule for each, or keep to dump"
        " it as it is."
    )
    assert list(tmp_path.iterdir()) == []


def test_a_derived_rule_needs_the_key_in_its_template():
    with pytest.raises(ValueError) as excinfo:
        rules.unique_email("someone@example.invalid")
    assert str(excinfo.value) == (
        "unique_email(template='someone@example.invalid'): the template must contain {pk},"
        " which makes the values unique."
    )


@pytest.mark.django_db
def test_hashed_values_depend_on_the_secret(settings):
    make_pinned()
    dataset = authors_dataset(name="hashed")
    first = fields_of(dumped(dataset))["testapp.category", 1]["name"]
    assert first == sha("news")
    settings.DATASET_SYNC_RULES_SECRET = "another secret"
    assert fields_of(dumped(dataset))["testapp.category", 1]["name"] != first
    del settings.DATASET_SYNC_RULES_SECRET
    # Without the setting, the project's SECRET_KEY is the secret.
    key = salted_hmac("dataset_sync.rules.hashed", "", secret=settings.SECRET_KEY).hexdigest()
    assert fields_of(dumped(dataset))["testapp.category", 1]["name"] == (
        hashlib.sha256((key + "news").encode()).hexdigest()
    )


# A target that requires scrubbed dumps


def people_specs(args):
    return [Spec("testapp.person", delete_missing=True)]


def refused(path, message):
    """Loading ``path`` into the target, through load() and loaddata-spec, is refused with
    ``message`` and exit code 5, and the target stays as it was."""
    before = list(Person.objects.using("target").values_list())
    with pytest.raises(UnscrubbedDumpError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 5)
    assert list(Person.objects.using("target").values_list()) == before


PEOPLE_RULES = (
    "testapp.person.name: {} in the dump, fake:name here;"
    " testapp.person.email: {} in the dump, unique_email here;"
    " testapp.person.phone: {} in the dump, hashed here;"
    " testapp.person.nickname: {} in the dump, fake:first_name here;"
    " testapp.person.bio: {} in the dump, fake:text here;"
    " testapp.person.ip: {} in the dump, null here;"
    " testapp.person.preferences: {} in the dump, fixed here;"
    " testapp.person.avatar: {} in the dump, blank here;"
    " testapp.person.born: {} in the dump, fake:date_of_birth here"
)


def unscrubbed(message_rules):
    return (
        "this database loads dataset 'people' only as dumped with the data rules declared here"
        f" (DATASET_SYNC_REQUIRE_RULES), and the dump's rules differ: {message_rules}. Declare"
        " the same rules where the dump is made and dump it again."
    )


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_a_target_requiring_rules_refuses_a_dump_without_them(tmp_path, settings):
    make_people()
    Person.objects.using("target").create(name="only on the target", email="t@example.invalid")
    path = tmp_path / "people.json"
    # The source declares 'people' without rules.
    dump(Dataset("people", people_specs), output=path)
    settings.DATASET_SYNC_REQUIRE_RULES = ["people"]
    refused(path, f"{path}: " + unscrubbed(PEOPLE_RULES.format(*["no rule"] * 9)))


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_a_target_requiring_rules_refuses_a_dump_written_before_dumps_named_them(
    tmp_path, settings
):
    make_people()
    path = tmp_path / "people.json"
    dump("people", output=path)
    path.write_text(path.read_text().replace(f'"rules": {json.dumps(RULES_OF_PEOPLE)}, ', ""))
    assert '"rules"' not in path.read_text()
    # Without the setting, such a dump loads.
    assert load(path, using="target").counts["testapp.person"].created == 2
    settings.DATASET_SYNC_REQUIRE_RULES = True
    refused(path, f"{path}: " + unscrubbed(PEOPLE_RULES.format(*["no rule"] * 9)))


RULES_OF_PEOPLE = {
    "testapp.person": {
        "name": "fake:name",
        "email": "unique_email",
        "phone": "hashed",
        "nickname": "fake:first_name",
        "bio": "fake:text",
        "ip": "null",
        "preferences": "fixed",
        "avatar": "blank",
        "born": "fake:date_of_birth",
    }
}


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_a_target_requiring_rules_refuses_a_dump_with_other_rules(tmp_path, settings):
    make_people()
    path = tmp_path / "people.json"
    dump(Dataset("people", people_specs, rules={"email": "hashed", "phone": "null"}), output=path)
    settings.DATASET_SYNC_REQUIRE_RULES = ["people"]
    assert json.loads(path.read_text())["rules"] == {
        "testapp.person": {"email": "hashed", "phone": "null"}
    }
    differences = ["no rule"] * 9
    differences[1:3] = ["hashed", "null"]
    refused(path, f"{path}: " + unscrubbed(PEOPLE_RULES.format(*differences)))


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_a_target_requiring_rules_loads_dumps_with_them_and_more(tmp_path, settings):
    make_people()
    path = tmp_path / "people.json"
    settings.DATASET_SYNC_REQUIRE_RULES = ["people"]
    dump("people", output=path)
    assert json.loads(path.read_text())["rules"] == RULES_OF_PEOPLE
    assert load(path, using="target").counts["testapp.person"].created == 2

    # A source may scrub more than the target asks for.
    more = tmp_path / "more.json"
    registry.datasets()  # the test app's datasets register on their first look-up
    people = registry._registered["people"]
    dump(Dataset("people", people_specs, rules={**people.rules, "status": "blank"}), output=more)
    assert load(more, using="target").counts["testapp.person"].updated == 2


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_require_rules_for_every_dataset_checks_dumps_that_name_no_dataset(tmp_path, settings):
    make_people()
    path = tmp_path / "people.json"
    dump(specs=people_specs(""), output=path)
    settings.DATASET_SYNC_REQUIRE_RULES = True
    settings.DATASET_SYNC_RULES = {"email": "unique_email"}
    message = (
        f"{path}: this database loads a dump that names no dataset only as dumped with the"
        " data rules declared here (DATASET_SYNC_REQUIRE_RULES), and the dump's rules differ:"
        " testapp.person.email: no rule in the dump, unique_email here. Declare the same rules"
        " where the dump is made and dump it again."
    )
    before = list(Person.objects.using("target").values_list())
    with pytest.raises(UnscrubbedDumpError) as excinfo:
        load(path, using="target", trust_dump_specs=True)
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 5)
    assert list(Person.objects.using("target").values_list()) == before


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_the_signature_covers_the_rules(tmp_path, settings):
    make_people()
    settings.DATASET_SYNC_SIGNING_KEY = "the key both sides share"
    path = tmp_path / "people.json"
    dump("people", output=path)
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"email": "unique_email", ', "")
    path.write_text("".join(lines))
    with pytest.raises(UntrustedDumpError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == (
        f"{path}: the dump's signature does not match: it was signed with another key, or"
        " changed after it was dumped. Use the same DATASET_SYNC_SIGNING_KEY on both sides and"
        " dump it again."
    )


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_a_dump_signed_before_dumps_named_their_rules_still_verifies(tmp_path):
    key = "the key both sides share"
    header = Header(specs=[{"model": "testapp.tag"}], vendor="sqlite", created="2026-01-01")
    stream = StringIO()
    writer = DumpWriter(stream, header, key)
    writer.start_spec()
    writer.write({"model": "testapp.tag", "pk": 7, "fields": {"name": "python"}})
    writer.close()
    assert '"rules"' not in stream.getvalue()
    path = tmp_path / "old.json"
    path.write_text(stream.getvalue())
    report = load(path, using="target", trust_dump_specs=True)
    assert report.counts["testapp.tag"].created == 1
