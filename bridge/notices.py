"""Notices (incidents and maintenance), their updates and scheduled overrides: types and pure rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.model import Status

DAY = 86400.0

UNPLANNED_STATES = ("investigating", "identified", "recovering", "resolved", "false_alarm")
PLANNED_STATES = ("scheduled", "underway", "complete")
STATES: Mapping[str, tuple[str, ...]] = {"unplanned": UNPLANNED_STATES, "planned": PLANNED_STATES}
ENDED_STATES = frozenset({"resolved", "false_alarm", "complete"})
# Sorry: only these make the page "degraded"; "recovering" is no longer current.
DEGRADING_STATES = frozenset({"investigating", "identified"})
TIMELINE_STATES = ("future", "present", "past_recent", "past_distant")
OVERRIDE_STATUSES = (Status.UP, Status.PARTIAL, Status.DOWN, Status.MAINTENANCE)


@dataclass(frozen=True)
class NoticeUpdate:
    """One progress update on a notice."""

    id: int
    notice_id: int
    state: str
    content: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Notice:
    """An unplanned incident or a planned maintenance, with linked components and its updates."""

    id: int
    type: str  # "planned" | "unplanned"
    state: str
    subject: str
    slug: str
    began_at: float | None
    ended_at: float | None
    begins_at: float | None  # planned only
    ends_at: float | None  # planned only
    created_at: float
    updated_at: float
    components: tuple[str, ...] = ()
    updates: tuple[NoticeUpdate, ...] = ()

    @property
    def latest_update(self) -> NoticeUpdate | None:
        """The most recent update, if any."""
        return self.updates[-1] if self.updates else None


@dataclass(frozen=True)
class Override:
    """A scheduled replacement of a component's shown status; ends_at None means until removed.

    message is the public text (page, feeds); reason is private to administrators (admin API, CLI).
    """

    id: int
    component_id: str
    status: Status
    starts_at: float
    ends_at: float | None
    reason: str | None
    created_at: float
    message: str | None = None

    def active(self, now: float) -> bool:
        """True while the override window contains now (start inclusive, end exclusive)."""
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)


@dataclass(frozen=True)
class Transition:
    """A state change a planned notice is due for (applied by the scheduler, recorded as an update)."""

    notice_id: int
    state: str
    at: float
    content: str


def timeline_state(notice: Notice, now: float, recent_days: float = 7.0) -> str:
    """future, present, past_recent (ended within recent_days) or past_distant."""
    if notice.state in ENDED_STATES or (notice.ended_at is not None and notice.ended_at <= now):
        ended = notice.ended_at if notice.ended_at is not None else notice.updated_at
        return "past_recent" if now - ended <= recent_days * DAY else "past_distant"
    start = notice.began_at if notice.began_at is not None else notice.begins_at
    if notice.state == "scheduled" or (start is not None and start > now):
        return "future"
    return "present"


def notice_path(notice: Notice) -> str:
    """Where the page shows a notice (the slug is for people; the id alone resolves too)."""
    return f"/notices/{notice.id}-{notice.slug}" if notice.slug else f"/notices/{notice.id}"


def notice_url(page_url: str, notice: Notice) -> str:
    """The notice's address below the page's public URL: absolute when [page] url is set, else a root-relative path."""
    return page_url.rstrip("/") + notice_path(notice)


def is_underway(notice: Notice) -> bool:
    """A planned maintenance currently in progress."""
    return notice.type == "planned" and notice.state == "underway"


def sorry_state(notices: Iterable[Notice]) -> str:
    """Sorry page state: degraded wins over under_maintenance, else operational."""
    notices = list(notices)
    if any(n.type == "unplanned" and n.state in DEGRADING_STATES for n in notices):
        return "degraded"
    if any(is_underway(n) for n in notices):
        return "under_maintenance"
    return "operational"


def active_overrides(overrides: Iterable[Override], now: float) -> dict[str, Override]:
    """Component id -> the override in force at now (one per component)."""
    active: dict[str, Override] = {}
    # Latest-starting active override wins when several overlap: it is the most specific intent.
    for o in sorted((o for o in overrides if o.active(now)), key=lambda o: (o.starts_at, o.id)):
        active[o.component_id] = o
    return active


def shown_overrides(overrides: Iterable[Override], notices: Iterable[Notice], now: float) -> dict[str, Status]:
    """Component id -> status replacing the monitored one: an active override beats an underway maintenance."""
    shown: dict[str, Status] = {}
    for n in notices:
        if is_underway(n):
            for cid in n.components:
                shown[cid] = Status.MAINTENANCE
    for cid, o in active_overrides(overrides, now).items():
        shown[cid] = o.status
    return shown


def due_transitions(notices: Iterable[Notice], now: float) -> list[Transition]:
    """Planned transitions whose time has come (also those missed while the daemon was down)."""
    due: list[Transition] = []
    for n in notices:
        if n.type != "planned":
            continue
        if n.state == "scheduled" and n.begins_at is not None and n.begins_at <= now:
            due.append(Transition(n.id, "underway", n.begins_at, "This maintenance is now underway."))
            if n.ends_at is not None and n.ends_at <= now:
                due.append(Transition(n.id, "complete", n.ends_at, "This maintenance is complete."))
        elif n.state == "underway" and n.ends_at is not None and n.ends_at <= now:
            due.append(Transition(n.id, "complete", n.ends_at, "This maintenance is complete."))
    return sorted(due, key=lambda t: (t.at, t.notice_id))


def next_change(notices: Iterable[Notice], overrides: Iterable[Override], now: float) -> float | None:
    """The earliest future instant at which a transition falls due or an override starts or ends."""
    times: list[float] = []
    for n in notices:
        if n.type == "planned" and n.state == "scheduled" and n.begins_at is not None:
            times.append(n.begins_at)
        if n.type == "planned" and n.state in ("scheduled", "underway") and n.ends_at is not None:
            times.append(n.ends_at)
    for o in overrides:
        times.append(o.starts_at)
        if o.ends_at is not None:
            times.append(o.ends_at)
    future = [t for t in times if t > now]
    return min(future) if future else None
