from __future__ import annotations

import django
import django.db.models.deletion
from django.db import migrations, models

# Django 4.2 has no db_default; there stock has a default like colour.
STOCK = (
    models.IntegerField(db_default=7)
    if django.VERSION >= (5, 0)
    else models.IntegerField(default=7)
)


class Migration(migrations.Migration):
    dependencies = [
        ("drift", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="gadget",
            name="colour",
            field=models.CharField(default="grey", max_length=20),
        ),
        migrations.AddField(model_name="gadget", name="stock", field=STOCK),
        migrations.AddField(
            model_name="maker",
            name="code",
            field=models.CharField(default="-", max_length=10),
            preserve_default=False,
        ),
        migrations.RenameField(model_name="part", old_name="label", new_name="title"),
        migrations.RenameModel(old_name="Widget", new_name="Component"),
        migrations.RenameField(model_name="component", old_name="name", new_name="title"),
        migrations.CreateModel(
            name="Accessory",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=50)),
                (
                    "gadget",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to="drift.gadget"
                    ),
                ),
            ],
        ),
    ]
