from django.urls import path

from . import views

app_name = "companies"
urlpatterns = [
    path("companies/", views.company_list_view, name="company_list"),
    path("companies/export.csv", views.company_export_view, name="company_export"),
    path("companies/<int:company_id>/", views.company_detail_view, name="company_detail"),
    path("companies/<int:company_id>/edit/", views.company_update_view, name="company_update"),
    path("companies/<int:company_id>/merge/", views.company_merge_view, name="company_merge"),
]
