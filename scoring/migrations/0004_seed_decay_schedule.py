"""Register decay materialisation with django-celery-beat (interval editable in the admin)."""

from django.db import migrations

TASK_NAME = "scoring: materialise score decay"


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME, defaults={"task": "scoring.decay_materialise_task", "interval": hourly, "enabled": True}
    )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0003_rule_conditions_caps_fit_rescore")]

    operations = [migrations.RunPython(seed, unseed)]
