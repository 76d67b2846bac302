from django import forms
from django.contrib import admin

from . import engine
from .models import RescoreJob, ScoreHistory, ScoringModel, ScoringRule
from .services import rule_create, rule_delete, rule_update
from .services.rules import RULE_FIELDS


class ScoringRuleForm(forms.ModelForm):
    class Meta:
        model = ScoringRule
        fields = ["model", *RULE_FIELDS]

    def clean_conditions(self):
        conditions = self.cleaned_data["conditions"] or []
        if not isinstance(conditions, list):
            raise forms.ValidationError("A list of {path, op, value} objects.")
        for index, raw in enumerate(conditions):
            try:
                engine.compile_condition(raw)
            except engine.ConditionError as exc:
                raise forms.ValidationError(f"conditions[{index}].{exc.field}: {exc.message}") from exc
        return conditions


@admin.register(ScoringRule)
class ScoringRuleAdmin(admin.ModelAdmin):
    form = ScoringRuleForm
    list_display = ["name", "kind", "event_type", "points", "is_active", "model", "project"]
    list_filter = ["kind", "is_active", "project"]
    list_select_related = ["model", "project"]
    search_fields = ["event_type", "name"]

    # Saving through the services re-scores the project, as the API does.
    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in RULE_FIELDS if field in form.cleaned_data}
        if change:
            rule_update(rule=ScoringRule.objects.get(pk=obj.pk), data=data)
        else:
            model = form.cleaned_data["model"]
            obj.pk = rule_create(project=model.project, data=data, model=model).pk

    def delete_model(self, request, obj):
        rule_delete(rule=obj)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            rule_delete(rule=rule)


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    """Read-only here: models are created, changed and made primary through the API and pages (which re-score)."""

    list_display = ["key", "name", "is_primary", "project", "updated_at"]
    list_filter = ["is_primary"]
    list_select_related = ["project"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ScoreHistory)
class ScoreHistoryAdmin(admin.ModelAdmin):
    list_display = ["lead", "reason", "old_score", "new_score", "delta", "occurred_at"]
    list_filter = ["reason"]
    list_select_related = ["lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RescoreJob)
class RescoreJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "done", "total", "changed", "reason", "created_at", "finished_at"]
    list_filter = ["status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
