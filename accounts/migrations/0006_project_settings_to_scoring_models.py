"""Stage thresholds, score range and decay moved to the project's scoring models (scoring 0007)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_invitation"),
        ("scoring", "0007_scoring_models"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="project", name="project_thresholds_monotonic"),
        migrations.RemoveConstraint(model_name="project", name="project_decay_rate_percent"),
        *(
            migrations.RemoveField(model_name="project", name=name)
            for name in (
                "warm_threshold",
                "hot_threshold",
                "qualified_threshold",
                "max_score",
                "decay_enabled",
                "decay_rate_percent",
                "decay_grace_days",
            )
        ),
    ]
