"""Register the weekly retraining of prediction models with django-celery-beat (interval editable in the admin)."""

from django.db import migrations

TASK_NAME = "predictions: retrain prediction models"


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    weekly, _ = IntervalSchedule.objects.get_or_create(every=7, period="days")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME, defaults={"task": "predictions.models_retrain_task", "interval": weekly, "enabled": True}
    )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0002_prediction_models"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
