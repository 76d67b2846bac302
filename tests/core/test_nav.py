"""The navigation registry: entries in order, each page once."""

import pytest

from core.nav import NavEntry, NavRegistry


def test_entries_are_listed_by_order_whatever_the_registration_order():
    registry = NavRegistry()
    registry.register(label="Rules", url_name="scoring:rule_list", order=40)
    registry.register(label="Overview", url_name="project_overview", order=10)
    assert list(registry) == [
        NavEntry(label="Overview", url_name="project_overview", order=10),
        NavEntry(label="Rules", url_name="scoring:rule_list", order=40),
    ]


def test_a_page_is_registered_once():
    registry = NavRegistry()
    registry.register(label="Leads", url_name="scoring:lead_list", order=30)
    registry.register(label="Leads", url_name="scoring:lead_list", order=30)  # a module imported again
    with pytest.raises(ValueError, match="scoring:lead_list"):
        registry.register(label="All leads", url_name="scoring:lead_list", order=35)
    assert [entry.label for entry in registry] == ["Leads"]
