"""Scoring models: every project's rules and scoring settings become its primary `default` model."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F, Q

POLICY_FIELDS = (
    "warm_threshold",
    "hot_threshold",
    "qualified_threshold",
    "max_score",
    "decay_enabled",
    "decay_rate_percent",
    "decay_grace_days",
)


def projects_to_default_models(apps, schema_editor):
    Project = apps.get_model("accounts", "Project")
    ScoringModel = apps.get_model("scoring", "ScoringModel")
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    ScoreHistory = apps.get_model("scoring", "ScoreHistory")
    for project in Project.objects.all().iterator():
        model = ScoringModel.objects.create(
            project_id=project.id,
            key="default",
            name="Default",
            description="The project's rules and settings before scoring models existed.",
            is_primary=True,
            **{field: getattr(project, field) for field in POLICY_FIELDS},
        )
        ScoringRule.objects.filter(project_id=project.id).update(model_id=model.id)
        ScoreHistory.objects.filter(project_id=project.id).update(model_id=model.id)


def default_models_to_projects(apps, schema_editor):
    Project = apps.get_model("accounts", "Project")
    ScoringModel = apps.get_model("scoring", "ScoringModel")
    for model in ScoringModel.objects.filter(is_primary=True):
        Project.objects.filter(id=model.project_id).update(**{field: getattr(model, field) for field in POLICY_FIELDS})


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_invitation"),
        ("ingest", "0004_event_rollups"),
        ("scoring", "0006_rescore_slices"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScoringModel",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("key", models.SlugField()),
                ("name", models.CharField(max_length=200)),
                ("description", models.TextField(blank=True)),
                ("is_primary", models.BooleanField(default=False)),
                ("warm_threshold", models.PositiveIntegerField(default=11)),
                ("hot_threshold", models.PositiveIntegerField(default=31)),
                ("qualified_threshold", models.PositiveIntegerField(default=60)),
                ("max_score", models.PositiveIntegerField(default=10000)),
                ("decay_enabled", models.BooleanField(default=True)),
                ("decay_rate_percent", models.FloatField(default=5.0)),
                ("decay_grace_days", models.PositiveIntegerField(default=7)),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="scoring_models", to="accounts.project"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("project", "key"), name="scoring_model_unique_key"),
                    models.UniqueConstraint(
                        condition=Q(is_primary=True), fields=("project",), name="scoring_model_one_primary"
                    ),
                    models.CheckConstraint(
                        condition=Q(warm_threshold__gt=0)
                        & Q(hot_threshold__gt=F("warm_threshold"))
                        & Q(qualified_threshold__gt=F("hot_threshold"))
                        & Q(max_score__gte=F("qualified_threshold")),
                        name="scoring_model_thresholds_monotonic",
                    ),
                    models.CheckConstraint(
                        condition=Q(decay_rate_percent__gte=0) & Q(decay_rate_percent__lte=100),
                        name="scoring_model_decay_rate_percent",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="LeadScore",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("score", models.IntegerField(default=0)),
                ("engagement", models.IntegerField(default=0)),
                ("fit", models.IntegerField(default=0)),
                ("grade", models.CharField(default="C", max_length=1)),
                ("stage", models.CharField(default="cold", max_length=16)),
                ("fold_state", models.JSONField(blank=True, default=dict)),
                ("updated_at", models.DateTimeField()),
                (
                    "lead",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="model_scores", to="ingest.lead"
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lead_scores",
                        to="scoring.scoringmodel",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="lead_scores", to="accounts.project"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("lead", "model"), name="lead_score_unique_model")],
                "indexes": [
                    models.Index(fields=["model", "-score"], name="lead_score_model_score_idx"),
                    models.Index(fields=["model", "stage"], name="lead_score_model_stage_idx"),
                ],
            },
        ),
        migrations.AddField(
            model_name="scoringrule",
            name="model",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="rules", to="scoring.scoringmodel"
            ),
        ),
        migrations.AddField(
            model_name="scorehistory",
            name="model",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="history", to="scoring.scoringmodel"
            ),
        ),
        migrations.RunPython(projects_to_default_models, default_models_to_projects),
        migrations.AlterField(
            model_name="scoringrule",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="rules", to="scoring.scoringmodel"
            ),
        ),
        migrations.AlterField(
            model_name="scorehistory",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="history", to="scoring.scoringmodel"
            ),
        ),
        migrations.RemoveConstraint(model_name="scorehistory", name="history_unique_lead_event"),
        migrations.AddConstraint(
            model_name="scorehistory",
            constraint=models.UniqueConstraint(
                condition=Q(event__isnull=False), fields=("lead", "model", "event"), name="history_unique_lead_event"
            ),
        ),
        migrations.RemoveIndex(model_name="scorehistory", name="history_lead_time_idx"),
        migrations.AddIndex(
            model_name="scorehistory",
            index=models.Index(fields=["lead", "model", "occurred_at"], name="history_lead_time_idx"),
        ),
    ]
