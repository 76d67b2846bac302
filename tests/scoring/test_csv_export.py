"""CSV injection: no cell of an export runs as a formula, however a spreadsheet splits it."""

import csv
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.selectors import CSV_FORMULA_TRIGGERS, csv_safe, leads_export_csv
from tests.scoring.factories import scored_lead

SEPARATORS = ",;\t"


def line(*cells) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([csv_safe(cell) for cell in cells])
    return out.getvalue()


def views(text: str) -> list[str]:
    """Every cell a spreadsheet might make of an exported line.

    Quote-aware parsing with each list separator (Excel's is "," or ";" by locale; tab when chosen),
    and a sloppy importer that splits on every separator and line break and drops quotes.
    """
    cells = [cell for delimiter in SEPARATORS for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
             for cell in row]  # fmt: skip
    cells += [part.lstrip('"') for part in re.split(r"[,;\t\r\n]", text)]
    return cells


def formulas(text: str) -> list[str]:
    return [cell for cell in views(text) if cell.lstrip().startswith(tuple(CSV_FORMULA_TRIGGERS))]


PAYLOADS = [
    # (the cell, what the export carries)
    ("=1+1", "'=1+1"),
    ("+1", "'+1"),
    ("-1", "'-1"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t'=1"),
    ("\r=1", "'\r'=1"),
    ("x;=1+1", "x;'=1+1"),  # Excel with ";" as list separator makes "=1+1" a cell
    ("a,=cmd|' /C calc'!A0", "a,'=cmd|' /C calc'!A0"),
    ("x\t@SUM(1)", "x\t'@SUM(1)"),
    ("x\n-1", "x\n'-1"),
    ("  =1+1", "'  =1+1"),  # leading whitespace, which importers may trim
    ("x; \u00a0+1", "x;' \u00a0+1"),
    ('"=1+1', "'\"=1+1"),
    ('x;"=1+1"', 'x;\'"=1+1"'),
    ("Jean-Luc", "Jean-Luc"),  # a trigger inside a word is no cell start
    ("a; b, c", "a; b, c"),
    ("ana@example.com", "ana@example.com"),
    ("", ""),
]


@pytest.mark.parametrize(("cell", "exported"), PAYLOADS)
def test_every_cell_start_that_leads_to_a_formula_is_defused(cell, exported):
    assert csv_safe(cell) == exported
    assert formulas(line("id-1", cell, 42)) == []


def test_the_check_sees_the_formula_an_unprotected_export_would_carry():
    raw = io.StringIO()
    csv.writer(raw).writerow(["x;=1+1"])
    assert set(formulas(raw.getvalue())) == {"=1+1"}  # what Excel with ";" would run


@given(st.text(alphabet=st.sampled_from(list("=+-@\t\r\n,;\"' xA1\u00a0")), max_size=12))
def test_no_text_survives_as_a_formula(cell):
    assert formulas(line(cell)) == []


@pytest.mark.django_db
def test_the_export_carries_defused_cells(tenant):
    scored_lead(tenant.project, "semi", "page_view", name="x;=1+1", company="a,=cmd|' /C calc'!A0", email="")

    text = "".join(leads_export_csv(leads=tenant.project.leads.all()))

    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert (row["name"], row["company"]) == ("x;'=1+1", "a,'=cmd|' /C calc'!A0")
    assert formulas(text) == []
    api = b"".join(tenant.client.get("/api/leads/export").streaming_content).decode()
    assert api == text
