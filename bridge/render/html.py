"""The HTML status page and notice pages: a view model over one Snapshot, rendered by Jinja2 (autoescaped)."""

from __future__ import annotations

import functools
import hashlib
import math
from base64 import b64encode
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import (
    Notice,
    Override,
    active_overrides,
    is_underway,
    notice_path,
    timeline_state,
)
from bridge.render.atom import STATE_LABEL
from bridge.render.bars import DAYS, Bars
from bridge.render.oxford import STATUS_NAME, iso_utc
from bridge.uptime import percent_words

CONTENT_TYPE = "text/html"
REFRESH_SECONDS = 60
# Groups in these states open by default: a reader should not have to hunt for the problem.
PROBLEMS = frozenset({Status.PARTIAL, Status.DOWN, Status.MAINTENANCE})
PAGE_JS = resources.files("bridge").joinpath("static/page.js").read_text("utf-8").strip()
# The page's only script is inline; its hash in the CSP lets it run while injected markup never could.
PAGE_JS_HASH = "sha256-" + b64encode(hashlib.sha256(PAGE_JS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    f"script-src '{PAGE_JS_HASH}'; connect-src 'self'; base-uri 'none'; form-action 'none'"
)


@functools.lru_cache(maxsize=8)  # one entry per distinct configuration: reloads are rare
def page_headers(frame_ancestors: tuple[str, ...]) -> dict[str, str]:
    """The HTML pages' CSP, whose frame-ancestors names the sites that may frame them (none: 'none'); do not mutate.

    With no site allowed, X-Frame-Options: DENY says the same to browsers older than CSP 2 (it cannot list sites).
    """
    sources = " ".join(frame_ancestors) or "'none'"
    headers = {"Content-Security-Policy": f"{CSP}; frame-ancestors {sources}"}
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    return headers


def utc_text(epoch: float | None) -> str:
    """'2026-11-22 23:00 UTC', or 'never' when absent or not a real time."""
    iso = iso_utc(epoch)
    return "never" if iso is None else iso[:10] + " " + iso[11:16] + " UTC"


def relative(epoch: float | None, now: float) -> str:
    """'just now', '5 minutes ago', 'in 2 hours' (one unit, truncated), or 'never'."""
    if epoch is None or not math.isfinite(epoch):
        return "never"
    delta = now - epoch
    ahead, left = delta < 0, abs(delta)
    if left < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if left >= size:
            n = int(left // size)
            words = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {words}" if ahead else f"{words} ago"
    return "just now"  # not reached: left >= 60 s falls in the minute branch


def notice_kind(n: Notice) -> str:
    """'Incident' or 'Maintenance'."""
    return "Maintenance" if n.type == "planned" else "Incident"


@dataclass(frozen=True)
class Row:
    """One component as the page shows it: why its shown status differs from monitoring, and its history."""

    view: ComponentView
    override: Override | None
    maintenance: Notice | None  # the underway maintenance replacing the status (when no override does)
    bars: Bars | None

    @property
    def since(self) -> float | None:
        """When the shown status began: the history's time (dated from the monitoring data) when it agrees."""
        if self.bars is not None and self.bars.last is not None and self.bars.last[1] == self.view.status.value:
            return self.bars.last[0]
        return self.view.since  # as this daemon saw it (e.g. no history yet)

    @property
    def differs(self) -> bool:
        """The shown status is not what monitoring says (an override or a maintenance replaced it)."""
        return self.view.status != self.view.monitored_status


@dataclass(frozen=True)
class Section:
    """One group: open by default when it has a problem."""

    view: GroupView
    rows: tuple[Row, ...]

    @property
    def open(self) -> bool:
        """Expanded on load."""
        return self.view.status in PROBLEMS or any(r.differs or r.view.status in PROBLEMS for r in self.rows)

    @property
    def stale(self) -> bool:
        """Some component's status comes from stale data."""
        return any(r.view.stale for r in self.rows)


@dataclass(frozen=True)
class Announcements:
    """The right-hand column: what is wrong now and what is planned."""

    incidents: tuple[Notice, ...]
    underway: tuple[Notice, ...]
    upcoming: tuple[Notice, ...]

    @property
    def empty(self) -> bool:
        """Nothing to announce."""
        return not (self.incidents or self.underway or self.upcoming)


def announcements(snap: Snapshot, now: float) -> Announcements:
    """Current incidents (newest first), underway maintenance, and upcoming maintenance (soonest first)."""
    incidents = [n for n in snap.notices if n.type == "unplanned" and timeline_state(n, now) == "present"]
    underway = [n for n in snap.notices if is_underway(n)]
    upcoming = [n for n in snap.notices if n.type == "planned" and not is_underway(n)
                and timeline_state(n, now) == "future"]
    upcoming.sort(key=lambda n: (n.begins_at if n.begins_at is not None else math.inf, n.id))
    return Announcements(tuple(incidents), tuple(underway), tuple(upcoming))


def sections(snap: Snapshot, bars_for: Callable[[str], Bars | None]) -> tuple[Section, ...]:
    """Every group with its rows, overrides and maintenance resolved as the aggregation applied them."""
    # Same rule and instant as aggregation, so the override shown always explains the status shown.
    overrides = active_overrides(snap.overrides, snap.generated_at)
    maint: dict[str, Notice] = {}
    for n in snap.notices:
        if is_underway(n):
            for cid in n.components:
                maint.setdefault(cid, n)
    out = []
    for g in snap.groups:
        rows = tuple(Row(c, overrides.get(c.id), None if c.id in overrides else maint.get(c.id), bars_for(c.id))
                     for c in g.components)
        out.append(Section(g, rows))
    return tuple(out)


def component_names(snap: Snapshot, ids: Iterable[str]) -> list[str]:
    """Names of the linked groups and components in page order (links to removed ones are dropped)."""
    wanted, names = set(ids), []
    for g in snap.groups:
        if g.id in wanted:
            names.append(g.name)
        names += [c.name for c in g.components if c.id in wanted]
    return names


def uptime_summary(bars: Bars) -> str:
    """'97.61% uptime (10 days 12 h of data)': the data part only while less than the window was monitored."""
    return percent_text(bars.percent) + ("" if bars.data is None else f" ({bars.data} of data)")


def bars_label(bars: Bars) -> str:
    """The bars as a whole, for screen readers; each span is an image named by its title (its days and uptime)."""
    return f"Last {DAYS} days: {uptime_summary(bars)}"


def percent_text(p: float | None) -> str:
    """'99.95% uptime' truncated to two decimals (only a spotless span reads 100.00%), or 'no history yet'."""
    return "no history yet" if p is None else f"{percent_words(p)} uptime"


# The page state's colour and icon, by the status that looks the same (grey "no data" for unknown).
PAGE_CLASS = {"operational": "up", "minor": "partial", "major": "down", "maintenance": "maintenance",
              "unknown": "nodata"}

FILTERS: dict[str, Callable[..., Any]] = {
    "page_class": PAGE_CLASS.__getitem__,
    "utc": utc_text,
    "iso": iso_utc,
    "label": lambda s: STATUS_NAME[Status(s)],
    "state": lambda s: STATE_LABEL.get(s, s.replace("_", " ").capitalize()),
    "bars_label": bars_label,
    "uptime_summary": uptime_summary,
    "notice_path": notice_path,
    "kind": notice_kind,
}


def configure(env: jinja2.Environment) -> jinja2.Environment:
    """Install the page's filters and globals; autoescape must already be on."""
    assert env.autoescape, "the page renders untrusted names: autoescape must be on"
    env.filters.update(FILTERS)
    env.globals.update(page_js=PAGE_JS, refresh=REFRESH_SECONDS, days=DAYS)
    return env


def _base(snap: Snapshot, now: float) -> dict[str, Any]:
    """Context every page shares."""
    return {"snap": snap, "now": now, "rel": lambda epoch: relative(epoch, now)}


def render_page(env: jinja2.Environment, snap: Snapshot, now: float, bars_for: Callable[[str], Bars | None]) -> bytes:
    """GET /: the whole status page."""
    ctx = _base(snap, now) | {"sections": sections(snap, bars_for), "ann": announcements(snap, now)}
    return env.get_template("page.html").render(ctx).encode("utf-8")


def render_notice(env: jinja2.Environment, snap: Snapshot, n: Notice, now: float) -> bytes:
    """GET /notices/{id}: one notice and its timeline, newest update first."""
    ctx = _base(snap, now) | {
        "n": n,
        "updates": list(reversed(n.updates)),
        "affected": component_names(snap, n.components),
        "timeline": timeline_state(n, now),
    }
    return env.get_template("notice.html").render(ctx).encode("utf-8")


def render_not_found(env: jinja2.Environment, snap: Snapshot, now: float, what: str) -> bytes:
    """The HTML 404 page."""
    return env.get_template("404.html").render(_base(snap, now) | {"what": what}).encode("utf-8")

