from django.contrib import admin

from .models import ScoreHistory, ScoringRule


@admin.register(ScoringRule)
class ScoringRuleAdmin(admin.ModelAdmin):
    list_display = ["event_type", "points", "is_active", "project"]
    list_filter = ["is_active", "project"]
    search_fields = ["event_type", "name"]


@admin.register(ScoreHistory)
class ScoreHistoryAdmin(admin.ModelAdmin):
    list_display = ["lead", "reason", "old_score", "new_score", "delta", "occurred_at"]
    list_filter = ["reason"]
    list_select_related = ["lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
