from django.contrib import admin

from .lead_tallies import lead_tallies_rebuild
from .models import Event, Lead
from .rollups import events_deleting


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "current_score", "lead_stage", "last_event_at"]
    list_filter = ["lead_stage", "project"]
    search_fields = ["anonymous_id", "user_id", "email", "name", "company"]
    readonly_fields = ["current_score", "lead_stage", "fold_state", "velocity_score", "events_last_24h", "merged_into"]

    # Deleting a lead cascades to its events: they leave the event counts too, and the project's lead
    # tallies are recounted (leads merged into a deleted one come back to life). (Erasure is the API's
    # DELETE /api/leads/<id>: it also erases merged leads and copies elsewhere.)
    def delete_model(self, request, obj):
        with events_deleting(events=Event.objects.filter(lead=obj)):
            super().delete_model(request, obj)
        lead_tallies_rebuild(project_id=obj.project_id)  # after the rollup lock, as every tally writer

    def delete_queryset(self, request, queryset):
        project_ids = sorted(set(queryset.values_list("project_id", flat=True)))
        with events_deleting(events=Event.objects.filter(lead__in=queryset)):
            super().delete_queryset(request, queryset)
        for project_id in project_ids:
            lead_tallies_rebuild(project_id=project_id)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "event_id", "project", "lead", "timestamp", "processed_at"]
    list_filter = ["type", "project"]
    search_fields = ["event_id", "name", "anonymous_id"]
    list_select_related = ["project", "lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        with events_deleting(events=Event.objects.filter(id=obj.id)):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with events_deleting(events=queryset):
            super().delete_queryset(request, queryset)
