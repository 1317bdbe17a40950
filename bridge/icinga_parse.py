"""Pure Icinga 2 API logic: objects and events to CheckStates (the stream's health is icinga_health)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bridge.model import CheckState, HostState, StatusData

CheckKey = tuple[str, str | None]  # (host, service); service None for the host check
Json = Mapping[str, Any]

# DowntimeTriggered too: a flexible downtime is only in effect once triggered, which DowntimeStarted is not.
# Flapping exists in 2.13 (measured) and is the only way is_flapping changes between check results.
EVENT_TYPES = (
    "CheckResult",
    "StateChange",
    "AcknowledgementSet",
    "AcknowledgementCleared",
    "DowntimeStarted",
    "DowntimeTriggered",
    "DowntimeRemoved",
    "Flapping",
)
# /metrics counts stream lines by these: each subscribed type, "other" (not asked for), "invalid" (not an object).
EVENT_LABELS = (*EVENT_TYPES, "other", "invalid")
_CHECK_ATTRS = (
    "name", "state", "state_type", "last_hard_state", "last_hard_state_change", "last_check",
    "last_check_result", "last_state_change", "acknowledgement", "downtime_depth", "flapping", "last_reachable",
)  # fmt: skip
HOST_ATTRS = _CHECK_ATTRS
SERVICE_ATTRS = (*_CHECK_ATTRS, "host_name")
DOWNTIME_ATTRS = ("host_name", "service_name", "fixed", "start_time", "end_time", "trigger_time", "duration")
_HARD = 1


def split_output(text: object) -> tuple[str, str]:
    """Icinga keeps the whole plugin output in one string: first line, then the rest (Nagios' two fields)."""
    if not isinstance(text, str):
        return "", ""
    first, _, rest = text.replace("\r\n", "\n").partition("\n")
    return first, rest


def host_state(service_state: int) -> int:
    """A host check's check_result.state is a service state: OK/WARNING mean UP, anything else DOWN."""
    return HostState.UP if service_state in (0, 1) else HostState.DOWN


def _num(value: object, default: float = 0.0) -> float:
    """A JSON number as float; anything else (null, junk) is the default."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


def _epoch(value: object) -> int:
    """Icinga's float epoch as whole seconds; -1 or 0 (never) become 0."""
    return max(0, int(_num(value)))


def _unreachable(host_state_value: int, reachable: object) -> int:
    """Icinga has no UNREACHABLE state: a DOWN host behind a failed dependency is reported as Nagios' 2."""
    return HostState.UNREACHABLE if host_state_value == HostState.DOWN and reachable is False else host_state_value


def pending(host: str, service: str | None, acknowledged: bool = False, depth: int = 0) -> CheckState:
    """A check without any check result yet (Nagios' has_been_checked=0)."""
    return CheckState(host, service, 0, _HARD, 0, False, acknowledged, depth, False, 0, 0, "", "")


def check_from_object(result: Json) -> CheckState | None:
    """Map one entry of /v1/objects/hosts or /services "results" to a CheckState; None if malformed."""
    attrs = result.get("attrs")
    if not isinstance(attrs, Mapping):
        return None
    is_host = result.get("type") == "Host"
    host = attrs.get("name") if is_host else attrs.get("host_name")
    service = None if is_host else attrs.get("name")
    if not isinstance(host, str) or not (is_host or isinstance(service, str)):
        return None
    acked = _num(attrs.get("acknowledgement")) > 0  # 0 none, 1 normal, 2 sticky
    depth = int(_num(attrs.get("downtime_depth")))
    cr = attrs.get("last_check_result")
    if not isinstance(cr, Mapping):
        return pending(host, service, acked, depth)
    state = int(_num(attrs.get("state"), 3))
    state_type = int(_num(attrs.get("state_type"), _HARD))
    # Icinga starts last_hard_state at UNKNOWN (hosts: DOWN) before any hard state; Nagios starts at 0.
    never_hard = _num(attrs.get("last_hard_state_change")) <= 0 and state_type != _HARD
    last_hard = 0 if never_hard else int(_num(attrs.get("last_hard_state"), state))
    if is_host:
        state = _unreachable(state, attrs.get("last_reachable"))
        last_hard = _unreachable(last_hard, attrs.get("last_reachable"))
    output, long_output = split_output(cr.get("output"))
    return CheckState(
        host=host,
        service=service,
        current_state=state,
        state_type=state_type,
        last_hard_state=last_hard,
        has_been_checked=True,
        acknowledged=acked,
        downtime_depth=depth,
        flapping=attrs.get("flapping") is True,
        last_check=_epoch(cr.get("execution_end") or attrs.get("last_check")),
        last_state_change=_epoch(attrs.get("last_state_change")),
        plugin_output=output,
        long_plugin_output=long_output,
    )


def downtime_key(downtime: Json) -> CheckKey | None:
    """The check a Downtime object (from /v1/objects/downtimes attrs or an event) belongs to."""
    host, service = downtime.get("host_name"), downtime.get("service_name")
    if not isinstance(host, str) or not host:
        return None
    return host, service if isinstance(service, str) and service else None


def downtime_in_effect(downtime: Json, now: float) -> bool:
    """Triggered (fixed downtimes are, at their start) and not yet over; Icinga removes it soon after."""
    trigger = _num(downtime.get("trigger_time"))
    if trigger <= 0:
        return False
    if downtime.get("fixed") is True:
        return now < _num(downtime.get("end_time"), math.inf)
    return now < trigger + _num(downtime.get("duration"))


def event_type(event: Json) -> str:
    """The event's type when it is one we subscribe to, else "other"."""
    kind = event.get("type")
    return kind if isinstance(kind, str) and kind in EVENT_TYPES else "other"


def status_data_of(checks: Mapping[CheckKey, CheckState], created: float, version: str | None) -> StatusData:
    """Split checks into a StatusData (give a copy when the loop may change checks meanwhile)."""
    hosts = {k[0]: c for k, c in checks.items() if k[1] is None}
    services = {(k[0], k[1]): c for k, c in checks.items() if k[1] is not None}
    return StatusData(created=created, version=version, hosts=hosts, services=services)


class IcingaState:
    """The checks as Icinga 2 reported them: filled by a sync, then kept current by stream events."""

    def __init__(self) -> None:
        self.checks: dict[CheckKey, CheckState] = {}
        self._times: dict[CheckKey, float] = {}  # exact check time: CheckState only keeps whole seconds
        self._downtimes: dict[CheckKey, set[str]] = {}  # names of the downtimes in effect

    @classmethod
    def synced(cls, hosts: Iterable[Json], services: Iterable[Json], downtimes: Iterable[Json], now: float) -> IcingaState:
        """A state from the three object queries; downtime depth is counted from the downtimes themselves."""
        state = cls()
        for dt in downtimes:
            attrs, key = dt.get("attrs"), None
            if isinstance(attrs, Mapping) and downtime_in_effect(attrs, now):
                key = downtime_key(attrs)
            if key is not None:
                state._downtimes.setdefault(key, set()).add(str(dt.get("name") or attrs.get("__name")))
        for result in (*hosts, *services):
            check = check_from_object(result) if isinstance(result, Mapping) else None
            if check is None:
                continue
            key = (check.host, check.service)
            cr = result["attrs"].get("last_check_result")
            state._times[key] = _num(cr.get("execution_end")) if isinstance(cr, Mapping) else 0.0
            state.checks[key] = check._replace(downtime_depth=len(state._downtimes.get(key, ())))
        return state

    def status_data(self, created: float, version: str | None = None) -> StatusData:
        """A StatusData copy safe to hand out (later events do not mutate it)."""
        return status_data_of(self.checks, created, version)

    def apply(self, event: Json) -> bool:
        """Fold one stream event in; True when a check changed. Replaying events already seen is harmless."""
        kind = event.get("type")
        if kind in ("DowntimeStarted", "DowntimeTriggered", "DowntimeRemoved"):
            return self._downtime(kind, event.get("downtime"))
        host, service = event.get("host"), event.get("service")
        if not isinstance(host, str) or not (service is None or isinstance(service, str)):
            return False
        key = (host, service)
        if kind in ("CheckResult", "StateChange"):
            return self._result(key, event)
        old = self.checks.get(key)
        if old is None:
            return False  # an ack or flap for an object we have no state for: the next result brings it
        if kind == "AcknowledgementSet":
            new = old._replace(acknowledged=True)
        elif kind == "AcknowledgementCleared":
            new = old._replace(acknowledged=False)
        elif kind == "Flapping" and isinstance(event.get("is_flapping"), bool):
            new = old._replace(flapping=event["is_flapping"])
        else:
            return False
        return self._put(key, new)

    def _put(self, key: CheckKey, new: CheckState) -> bool:
        """Store new; True when it differs from what was there."""
        changed = self.checks.get(key) != new
        self.checks[key] = new
        return changed

    def _result(self, key: CheckKey, event: Json) -> bool:
        """A CheckResult or StateChange: the embedded check result, unless we already hold a newer one."""
        cr = event.get("check_result")
        if not isinstance(cr, Mapping):
            return False
        when = _num(cr.get("execution_end"), _num(event.get("timestamp")))
        if when < self._times.get(key, -math.inf):
            return False  # older than what we have (a replay after a sync, or late delivery)
        old = self.checks.get(key)
        after = cr.get("vars_after") if isinstance(cr.get("vars_after"), Mapping) else {}
        raw = int(_num(cr.get("state"), 3))
        is_host = key[1] is None
        # StateChange carries the object's own state (host: 0 UP / 1 DOWN); CheckResult only the raw result.
        state = int(_num(event.get("state"), host_state(raw) if is_host else raw))
        if is_host:
            state = _unreachable(state, after.get("reachable"))
        state_type = int(_num(event.get("state_type"), _num(after.get("state_type"), _HARD)))
        if state_type == _HARD:
            last_hard = state
        else:
            last_hard = old.last_hard_state if old is not None and old.has_been_checked else 0
        changed_state = old is None or not old.has_been_checked or old.current_state != state
        output, long_output = split_output(cr.get("output"))
        acked = event.get("acknowledgement")
        new = CheckState(
            host=key[0],
            service=key[1],
            current_state=state,
            state_type=state_type,
            last_hard_state=last_hard,
            has_been_checked=True,
            acknowledged=acked if isinstance(acked, bool) else (old is not None and old.acknowledged),
            downtime_depth=len(self._downtimes.get(key, ())),
            flapping=old is not None and old.flapping,
            last_check=_epoch(when),
            last_state_change=_epoch(when) if changed_state else old.last_state_change,
            plugin_output=output,
            long_plugin_output=long_output,
        )
        self._times[key] = when
        return self._put(key, new)

    def _downtime(self, kind: str, downtime: object) -> bool:
        """Track downtimes in effect by name, so a repeated Started/Triggered/Removed counts once."""
        if not isinstance(downtime, Mapping) or (key := downtime_key(downtime)) is None:
            return False
        name = str(downtime.get("__name") or downtime.get("name"))
        names = self._downtimes.setdefault(key, set())
        if kind == "DowntimeRemoved":
            names.discard(name)
        elif kind == "DowntimeTriggered" or downtime.get("fixed") is True:
            names.add(name)  # a fixed downtime is in effect from its start; a flexible one once triggered
        old = self.checks.get(key)
        return old is not None and self._put(key, old._replace(downtime_depth=len(names)))
