"""docs/states.md says what the code does: its tables are read and checked against the rules and renderers."""

from __future__ import annotations

import re

import pytest

from bridge import metrics
from bridge.model import Status
from bridge.page_state import HEADLINE, STATES
from bridge.render import badge, oxford, sorry, statuspage_components
from bridge.status_rules import combine
from tests.conftest import REPO

DOC = (REPO / "docs" / "states.md").read_text("utf-8")
COUNTS = re.compile(r"(\d) (up|down|partial|maintenance|nodata)")


def table(heading: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the first table after a line starting with heading."""
    lines = DOC[DOC.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_page_states_are_listed_in_rule_order() -> None:
    assert [row[0] for row in table("The first row that matches wins.")] == list(STATES)


@pytest.mark.parametrize("row", table("| page state | HTML banner"), ids=lambda r: r[0])
def test_surface_table(row: list[str]) -> None:
    state, banner, code, indicator, badge_words, metric = row
    if state != "unknown":
        assert banner.startswith(HEADLINE[state] + " (")
    assert int(code) == oxford.PAGE_CODE[state]
    if state == "minor":
        assert indicator == "minor or major"
        assert badge_words == " or ".join(
            f"{badge.PAGE_MESSAGE[i][0]} ({c})" for i, c in (("minor", "gold"), ("major", "orange")))
    else:
        assert indicator == statuspage_components.PAGE_INDICATOR[state]
    assert int(metric) == metrics.PAGE_CODE[state]


@pytest.mark.parametrize("row", table("| status | page |"), ids=lambda r: r[0])
def test_component_status_table(row: list[str]) -> None:
    status = Status(row[0])
    code, name = (x.strip() for x in row[2].split("/"))
    assert (int(code), name) == (oxford.STATUS_CODE[status], oxford.STATUS_NAME[status]) and row[1] == name
    assert row[3] == statuspage_components.COMPONENT_STATUS[status]
    assert row[4] == sorry.STATE[status]
    assert int(row[5]) == metrics.STATUS_CODE[status]


@pytest.mark.parametrize("row", table("Examples, four checks each"), ids=lambda r: r[0])
def test_rule_examples(row: list[str]) -> None:
    checks = [Status(s) for n, s in COUNTS.findall(row[0]) for _ in range(int(n))]
    assert len(checks) == 4
    for rule, expected in zip(("worst", "all", "quorum"), row[1:], strict=True):
        assert combine(checks, rule, 50).value == expected, rule
