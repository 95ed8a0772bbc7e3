"""The demo: dump a dataset from "production" and load it into a stale "stage".

Both are SQLite files under demo-output/. Production gets sample data; stage gets a copy of
it that has gone stale: production has since changed a question, deleted a choice and added
one, while stage has a question of its own that lies outside the dataset. Dumping
``authors:1,2`` from production and loading it into stage brings the dataset on stage to
exactly what production has, deletions included, and leaves stage's own rows alone.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import shutil
import sys
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "demo-output"

sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "testapp.settings"
os.environ["DATASET_SYNC_TEST_DB"] = "sqlite"
os.environ["DATASET_SYNC_SQLITE_DIR"] = str(OUTPUT)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from testapp.models import Author, Choice, Question, Tag  # noqa: E402

PRODUCTION, STAGE = "default", "target"
WHEN = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.timezone.utc)


def fill(using: str) -> None:
    tags = [Tag.objects.using(using).create(name=name) for name in ("django", "python", "sql")]
    for author_id in (1, 2, 3):
        author = Author.objects.using(using).create(
            pk=author_id, name=f"Author {author_id}", email=f"author{author_id}@example.com"
        )
        for number in (1, 2):
            question = Question.objects.using(using).create(
                author=author, text=f"Question {author_id}.{number}?", pub_date=WHEN
            )
            question.tags.set(tags[:number])
            for choice in ("yes", "no"):
                Choice.objects.using(using).create(question=question, text=choice)


def dataset(using: str) -> list[str]:
    lines = []
    for question in Question.objects.using(using).order_by("pk").prefetch_related("tags"):
        tags = ",".join(tag.name for tag in question.tags.all())
        lines.append(
            f"question {question.pk} by author {question.author_id}: {question.text!r} [{tags}]"
        )
        for choice in Choice.objects.using(using).filter(question=question).order_by("pk"):
            lines.append(f"  choice {choice.pk}: {choice.text!r}, {choice.votes} votes")
    return lines


def main() -> None:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir()
    for alias in (PRODUCTION, STAGE):
        call_command("migrate", database=alias, verbosity=0)
        fill(alias)

    # Production moves on after stage was copied from it.
    Question.objects.using(PRODUCTION).filter(pk=1).update(text="Question 1.1, reworded?")
    Choice.objects.using(PRODUCTION).filter(pk=2).delete()
    Choice.objects.using(PRODUCTION).create(question_id=1, text="maybe", votes=7)
    Question.objects.using(PRODUCTION).get(pk=3).tags.add(3)
    # Stage has a row of its own, outside the dataset (author 3 is not in authors:1,2).
    Question.objects.using(STAGE).create(author_id=3, text="Stage-only draft?", pub_date=WHEN)

    dump_path = OUTPUT / "authors-1-2.json.gz"
    print("$ ./manage.py dumpdata-spec authors:1,2 -o demo-output/authors-1-2.json.gz")
    call_command("dumpdata-spec", "authors:1,2", output=str(dump_path), database=PRODUCTION)

    before = dataset(STAGE)
    print("$ ./manage.py loaddata-spec demo-output/authors-1-2.json.gz --database stage")
    out = StringIO()
    call_command("loaddata-spec", str(dump_path), database=STAGE, stdout=out)
    print(out.getvalue().rstrip())

    after = dataset(STAGE)
    print("\nStage, before -> after the load:")
    for line in difflib.unified_diff(
        before, after, "stage before", "stage after", n=1, lineterm=""
    ):
        print(f"  {line}")

    stage_only = [line for line in after if "Stage-only" in line]
    if not stage_only:
        sys.exit("FAILED: the stage-only question outside the dataset was deleted.")
    if [line for line in after if line not in stage_only] != dataset(PRODUCTION):
        sys.exit("FAILED: stage does not hold production's dataset.")
    print(
        "\nStage now holds production's authors 1 and 2: the reworded question, the new"
        " choice and the new tag arrived, the deleted choice is gone, and the stage-only"
        " question outside the dataset survived."
    )


if __name__ == "__main__":
    main()
