"""Stored delivery failures keep only a short reason: drop the receivers' bodies kept before."""

import re
from http import HTTPStatus

from django.db import migrations


def _status_reason(code):
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _clean(text):
    line = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text)).strip()
    return line if len(line) <= 200 else line[:199] + "…"


def forwards(apps, schema_editor):
    deliveries = apps.get_model("automations", "WebhookDelivery")
    executions = apps.get_model("automations", "AutomationExecution")
    failed_jobs = apps.get_model("leadpulse", "FailedJob")
    for model in (deliveries, executions):
        failed = model.objects.exclude(error="")
        for code in failed.exclude(response_code=None).values_list("response_code", flat=True).distinct():
            failed.filter(response_code=code).update(error=_status_reason(code))
        for row_id, error in failed.filter(response_code=None).values_list("id", "error").iterator():
            if _clean(error) != error:
                model.objects.filter(id=row_id).update(error=_clean(error))
    failed = deliveries.objects.filter(status="failed").exclude(response_code=None)
    codes = {str(delivery_id): code for delivery_id, code in failed.values_list("delivery_id", "response_code")}
    for job_id, reference, error in (
        failed_jobs.objects.filter(kind="webhook.delivery").exclude(error="").values_list("id", "reference", "error")
    ):
        code = codes.get(reference)
        cleaned = _status_reason(code) if code else _clean(error)
        if cleaned != error:
            failed_jobs.objects.filter(id=job_id).update(error=cleaned)


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0002_delivery_once_per_change"),
        ("leadpulse", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
