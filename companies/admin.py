from django.contrib import admin

from .models import Company, CompanyMembership, CompanyRollupSettings, CompanyScore, CompanyScoreHistory


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "domain", "project", "merged_into", "updated_at"]
    search_fields = ["key", "name", "domain"]
    list_filter = ["project"]
    raw_id_fields = ["merged_into"]


@admin.register(CompanyMembership)
class CompanyMembershipAdmin(admin.ModelAdmin):
    list_display = ["lead", "company", "project", "created_at"]
    raw_id_fields = ["lead", "company"]


@admin.register(CompanyScore)
class CompanyScoreAdmin(admin.ModelAdmin):
    list_display = ["company", "model", "score", "stage", "updated_at"]
    list_filter = ["stage"]
    raw_id_fields = ["company"]


@admin.register(CompanyRollupSettings)
class CompanyRollupSettingsAdmin(admin.ModelAdmin):
    list_display = ["model", "project", "top_n", "breadth_points", "breadth_cap", "window_days", "updated_at"]
    list_filter = ["project"]
    raw_id_fields = ["model"]


@admin.register(CompanyScoreHistory)
class CompanyScoreHistoryAdmin(admin.ModelAdmin):
    list_display = ["company", "model", "old_score", "new_score", "new_stage", "reason", "moved_by", "occurred_at"]
    list_filter = ["reason"]
    raw_id_fields = ["company", "moved_by"]
