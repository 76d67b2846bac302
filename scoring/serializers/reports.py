"""Reports on the wire: stage counts, the analytics dashboard, the leaderboard."""

from drf_spectacular.utils import extend_schema_serializer, inline_serializer
from rest_framework import serializers

from ..engine import MATRIX_CELLS
from .leads import LeadSerializer


@extend_schema_serializer(component_name="ReportStageCounts")
class StageCountsSerializer(serializers.Serializer):
    cold = serializers.IntegerField()
    warm = serializers.IntegerField()
    hot = serializers.IntegerField()
    qualified = serializers.IntegerField()


@extend_schema_serializer(component_name="ReportDashboard")
class DashboardSerializer(serializers.Serializer):
    totalLeads = serializers.IntegerField()
    qualifiedLeads = serializers.IntegerField()
    averageScore = serializers.FloatField()
    eventsToday = serializers.IntegerField()
    lastEventAt = serializers.DateTimeField(allow_null=True, help_text="Null when the project has no events.")
    stageDistribution = StageCountsSerializer()
    eventsByType = serializers.DictField(
        child=serializers.IntegerField(), help_text="Event name → count, the 12 most frequent."
    )
    eventsPerDay = inline_serializer(
        "ReportDashboardDay", fields={"date": serializers.DateField(), "count": serializers.IntegerField()}, many=True
    )
    topLeads = LeadSerializer(many=True, help_text="The 10 highest scores.")


@extend_schema_serializer(component_name="ReportMatrix")
class MatrixSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The scoring model's key.")
    warmThreshold = serializers.IntegerField(help_text="Engagement from here up is tier 2.")
    hotThreshold = serializers.IntegerField(help_text="Engagement from here up is tier 1.")
    total = serializers.IntegerField(help_text="All live leads: the sum of the cells.")
    cells = inline_serializer(
        "ReportMatrixCells",
        fields={cell: serializers.IntegerField(min_value=0) for cell in MATRIX_CELLS},
        help_text="Live leads per cell, A1 (best fit, most engaged) … D3, every cell present.",
    )


@extend_schema_serializer(component_name="ReportLeaderboard")
class LeaderboardSerializer(serializers.Serializer):
    results = LeadSerializer(many=True)
    count = serializers.IntegerField(help_text="All live leads, not only this page.")
