from django.urls import path

from . import api

app_name = "companies_api"
urlpatterns = [
    path("api/companies", api.CompanyListApi.as_view(), name="company-list"),
    # before the detail route, or these would be taken for company ids
    path("api/companies/export", api.CompanyExportApi.as_view(), name="company-export"),
    path("api/companies/leaderboard", api.CompanyLeaderboardApi.as_view(), name="company-leaderboard"),
    path("api/companies/settings", api.CompanySettingsApi.as_view(), name="company-settings"),
    path("api/companies/<str:company_id>", api.CompanyDetailApi.as_view(), name="company-detail"),
    path("api/companies/<str:company_id>/merge", api.CompanyMergeApi.as_view(), name="company-merge"),
]
