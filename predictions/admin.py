from django.contrib import admin

from .models import LeadPrediction, Outcome, PredictionModel, PredictionSettings, TrainingJob


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ["lead", "outcome", "value", "occurred_at", "source", "project"]
    list_filter = ["outcome", "source", "project"]
    raw_id_fields = ["lead", "author", "api_key"]


@admin.register(PredictionSettings)
class PredictionSettingsAdmin(admin.ModelAdmin):
    list_display = ["project", "won_event_type", "updated_at"]


@admin.register(PredictionModel)
class PredictionModelAdmin(admin.ModelAdmin):
    list_display = ["project", "scoring_model", "version", "trained_at", "train_count", "test_count", "active"]
    list_filter = ["active", "project"]
    raw_id_fields = ["scoring_model"]
    exclude = ["document"]  # the learnt coefficients: large, and not for editing by hand
    readonly_fields = ["report"]


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["project", "scoring_model", "status", "progress", "started_at", "finished_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["scoring_model", "requested_by", "prediction_model"]


@admin.register(LeadPrediction)
class LeadPredictionAdmin(admin.ModelAdmin):
    list_display = ["lead", "prediction_model", "probability", "computed_at"]
    raw_id_fields = ["lead", "prediction_model"]
