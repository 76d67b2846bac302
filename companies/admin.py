from django.contrib import admin

from .models import Company, CompanyMembership, CompanyScore


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "domain", "project", "updated_at"]
    search_fields = ["key", "name", "domain"]
    list_filter = ["project"]


@admin.register(CompanyMembership)
class CompanyMembershipAdmin(admin.ModelAdmin):
    list_display = ["lead", "company", "project", "created_at"]
    raw_id_fields = ["lead", "company"]


@admin.register(CompanyScore)
class CompanyScoreAdmin(admin.ModelAdmin):
    list_display = ["company", "model", "score", "stage", "updated_at"]
    list_filter = ["stage"]
    raw_id_fields = ["company"]
