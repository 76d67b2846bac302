from django.contrib import admin

from core.pipeline import lead_listeners_changed

from .models import AutomationExecution, AutomationRule, WebhookDelivery, WebhookSubscription


class ListenersChangedMixin:
    """Edits in the admin must wake (or quiet) the project's lead-change hand-off too."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        lead_listeners_changed(project_id=obj.project_id)

    def delete_model(self, request, obj):
        lead_listeners_changed(project_id=obj.project_id)
        super().delete_model(request, obj)  # type: ignore[misc]


@admin.register(AutomationRule)
class AutomationRuleAdmin(ListenersChangedMixin, admin.ModelAdmin):
    list_display = ["name", "project", "trigger", "action", "is_active", "cooldown_seconds"]
    list_filter = ["trigger", "action", "is_active"]
    search_fields = ["name"]


@admin.register(AutomationExecution)
class AutomationExecutionAdmin(admin.ModelAdmin):
    list_display = ["rule", "lead", "status", "attempts", "response_code", "created_at"]
    list_filter = ["status"]
    list_select_related = ["rule", "lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ListenersChangedMixin, admin.ModelAdmin):
    list_display = ["url", "project", "is_active", "consecutive_failures", "disabled_at"]
    list_filter = ["is_active"]
    readonly_fields = ["secret", "consecutive_failures", "disabled_at", "disabled_reason"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "url", "status", "attempts", "response_code", "created_at", "delivered_at"]
    list_filter = ["status", "event"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
