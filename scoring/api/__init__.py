"""The scoring API (DRF views), one module per resource; `scoring/urls.py` routes to the names below."""

from .leads import (
    LeadDetailApi,
    LeadExportApi,
    LeadHistoryApi,
    LeadIntelligenceApi,
    LeadListApi,
    LeadScoreBreakdownApi,
    LeadsCsvExportApi,
    LeadTimelineApi,
)
from .models import ScoringModelDetailApi, ScoringModelListApi, ScoringModelPrimaryApi
from .reports import AnalyticsDashboardApi, LeaderboardApi, LeaderboardByStageApi
from .rules import RuleDetailApi, RuleListApi, RulePreviewApi
from .settings import RescoreJobDetailApi, RescoreJobListApi, ScoringSettingsApi

__all__ = [
    "AnalyticsDashboardApi",
    "LeadDetailApi",
    "LeadExportApi",
    "LeadHistoryApi",
    "LeadIntelligenceApi",
    "LeadListApi",
    "LeadScoreBreakdownApi",
    "LeadTimelineApi",
    "LeaderboardApi",
    "LeaderboardByStageApi",
    "LeadsCsvExportApi",
    "RescoreJobDetailApi",
    "RescoreJobListApi",
    "RuleDetailApi",
    "RuleListApi",
    "RulePreviewApi",
    "ScoringModelDetailApi",
    "ScoringModelListApi",
    "ScoringModelPrimaryApi",
    "ScoringSettingsApi",
]
