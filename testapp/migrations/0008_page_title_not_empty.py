import django
from django.db import migrations, models

# CheckConstraint's argument: "check" until Django 5.1 named it "condition".
CHECK = "condition" if django.VERSION >= (5, 1) else "check"


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0007_section"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="page",
            constraint=models.CheckConstraint(
                **{CHECK: ~models.Q(title="")},  # type: ignore[arg-type]
                name="testapp_page_title_not_empty",
            ),
        ),
    ]
