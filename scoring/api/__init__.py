"""The scoring API (DRF views), one module per resource; `scoring/urls.py` routes to the names below."""

from .leads import (
    LeadAdjustmentListApi,
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
from .reports import AnalyticsDashboardApi, AnalyticsMatrixApi, LeaderboardApi, LeaderboardByStageApi
from .rules import RuleDetailApi, RuleListApi, RulePreviewApi
from .settings import RescoreJobDetailApi, RescoreJobListApi, ScoringSettingsApi
from .versions import (
    DraftApi,
    DraftPreviewApi,
    DraftPublishApi,
    LeadVersionScoreApi,
    VersionDetailApi,
    VersionDiffApi,
    VersionListApi,
    VersionRollbackApi,
)

__all__ = [
    "AnalyticsDashboardApi",
    "AnalyticsMatrixApi",
    "DraftApi",
    "DraftPreviewApi",
    "DraftPublishApi",
    "LeadAdjustmentListApi",
    "LeadDetailApi",
    "LeadExportApi",
    "LeadHistoryApi",
    "LeadIntelligenceApi",
    "LeadListApi",
    "LeadScoreBreakdownApi",
    "LeadTimelineApi",
    "LeadVersionScoreApi",
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
    "VersionDetailApi",
    "VersionDiffApi",
    "VersionListApi",
    "VersionRollbackApi",
]
