from django.contrib import admin, messages

from .deadletter import failed_job_replay
from .models import FailedJob


@admin.register(FailedJob)
class FailedJobAdmin(admin.ModelAdmin):
    list_display = ["kind", "reference", "project", "attempts", "created_at", "replayed_at"]
    list_filter = ["kind", "project"]
    readonly_fields = ["project", "kind", "reference", "payload", "error", "attempts", "replayed_at"]
    actions = ["replay"]

    @admin.action(description="Replay the selected failed jobs")
    def replay(self, request, queryset):
        for job in queryset:
            failed_job_replay(job=job)
        self.message_user(request, f"Replayed {queryset.count()} job(s).", messages.SUCCESS)

    def has_add_permission(self, request):
        return False
