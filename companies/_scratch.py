"""SCRATCH until capi lands: stand-ins of its selectors, serializer and services (delete after the merge)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rest_framework import serializers


@dataclass(frozen=True)
class CompanyModelScore:
    model: str
    primary: bool
    score: int
    stage: str
    breakdown: dict[str, Any] | None
    updated_at: datetime | None


def company_model_scores(*, company: Any) -> list[CompanyModelScore]:
    return []


def companies_export_csv(*, companies: Any) -> Any:
    yield "id,name\n"


class CompanyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    traits = serializers.JSONField()


def company_update(*, company: Any, data: dict[str, Any]) -> Any:
    raise NotImplementedError


def company_merge(*, source: Any, target: Any) -> Any:
    raise NotImplementedError
