from django.urls import path

from . import api

app_name = "scoring_api"
urlpatterns = [
    path("api/leads", api.LeadListApi.as_view(), name="lead-list"),
    # before the detail route, or "export" would be taken for a lead id
    path("api/leads/export", api.LeadsCsvExportApi.as_view(), name="lead-export-csv"),
    path("api/leads/<str:lead_id>", api.LeadDetailApi.as_view(), name="lead-detail"),
    path("api/leads/<str:lead_id>/export", api.LeadExportApi.as_view(), name="lead-export"),
    path("api/leads/<str:lead_id>/timeline", api.LeadTimelineApi.as_view(), name="lead-timeline"),
    path("api/leads/<str:lead_id>/score-breakdown", api.LeadScoreBreakdownApi.as_view(), name="lead-breakdown"),
    path("api/leads/<str:lead_id>/intelligence", api.LeadIntelligenceApi.as_view(), name="lead-intelligence"),
    path("api/leads/<str:lead_id>/history", api.LeadHistoryApi.as_view(), name="lead-history"),
    path("api/leads/<str:lead_id>/score", api.LeadVersionScoreApi.as_view(), name="lead-version-score"),
    path("api/leads/<str:lead_id>/adjustments", api.LeadAdjustmentListApi.as_view(), name="lead-adjustments"),
    path("api/leaderboard", api.LeaderboardApi.as_view(), name="leaderboard"),
    path("api/leaderboard/by-stage", api.LeaderboardByStageApi.as_view(), name="leaderboard-by-stage"),
    path("api/analytics/dashboard", api.AnalyticsDashboardApi.as_view(), name="analytics-dashboard"),
    path("api/analytics/matrix", api.AnalyticsMatrixApi.as_view(), name="analytics-matrix"),
    path("api/models", api.ScoringModelListApi.as_view(), name="model-list"),
    path("api/models/<str:key>", api.ScoringModelDetailApi.as_view(), name="model-detail"),
    path("api/models/<str:key>/primary", api.ScoringModelPrimaryApi.as_view(), name="model-primary"),
    path("api/models/<str:key>/versions", api.VersionListApi.as_view(), name="version-list"),
    path("api/models/<str:key>/versions/<str:number>", api.VersionDetailApi.as_view(), name="version-detail"),
    path(
        "api/models/<str:key>/versions/<str:number>/diff/<str:other>", api.VersionDiffApi.as_view(), name="version-diff"
    ),
    path(
        "api/models/<str:key>/versions/<str:number>/rollback", api.VersionRollbackApi.as_view(), name="version-rollback"
    ),
    path("api/models/<str:key>/draft", api.DraftApi.as_view(), name="draft"),
    path("api/models/<str:key>/draft/preview", api.DraftPreviewApi.as_view(), name="draft-preview"),
    path("api/models/<str:key>/draft/publish", api.DraftPublishApi.as_view(), name="draft-publish"),
    path("api/scoring/settings", api.ScoringSettingsApi.as_view(), name="scoring-settings"),
    path("api/rescore-jobs", api.RescoreJobListApi.as_view(), name="rescore-job-list"),
    path("api/rescore-jobs/<str:job_id>", api.RescoreJobDetailApi.as_view(), name="rescore-job-detail"),
]
for prefix in ("api/rules", "api/scoring-rules"):
    urlpatterns += [
        path(prefix, api.RuleListApi.as_view(), name=f"{prefix}-list"),
        path(f"{prefix}/preview", api.RulePreviewApi.as_view(), name=f"{prefix}-preview"),
        path(f"{prefix}/<str:rule_id>", api.RuleDetailApi.as_view(), name=f"{prefix}-detail"),
    ]
