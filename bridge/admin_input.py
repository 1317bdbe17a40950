"""Validation of admin input (API bodies and CLI options alike): one InputError naming the field path.

The field rules here (times, one-line text, known ids) are shared; notices are parsed here, overrides in
bridge.override_input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bridge.config import Config
from bridge.notices import ENDED_STATES, STATES, Notice

SUBJECT_MAX = 200
CONTENT_MAX = 10_000
TIME_TEXT_MAX = 64
EPOCH_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last instant datetime can show
NUMERIC = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Control characters other than tab/newline/CR would corrupt the page or the feeds; a lone surrogate
# (JSON allows "\ud800") cannot be encoded as UTF-8, so SQLite and every feed would fail on it.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

DEFAULT_STATE = {"unplanned": "investigating", "planned": "scheduled"}
DEFAULT_CONTENT = {
    "investigating": "We are investigating.",
    "identified": "The issue has been identified.",
    "recovering": "The service is recovering.",
    "resolved": "This issue is resolved.",
    "false_alarm": "This was a false alarm.",
    "scheduled": "Maintenance is scheduled.",
    "underway": "This maintenance is underway.",
    "complete": "This maintenance is complete.",
}


class InputError(ValueError):
    """One validation problem: the field path (e.g. "components[2]") and what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class NoticeInput:
    """A validated new notice."""

    type: str
    state: str
    subject: str
    content: str
    components: tuple[str, ...]
    begins_at: float | None
    ends_at: float | None


@dataclass(frozen=True)
class NoticePatch:
    """Validated changes to a notice: storage fields (subject/begins_at/ends_at) and the new component set."""

    fields: dict[str, Any]
    components: tuple[str, ...] | None


@dataclass(frozen=True)
class UpdateInput:
    """A validated progress update."""

    state: str
    content: str


def known_ids(config: Config) -> frozenset[str]:
    """Ids a notice may link to: every component and every group (Sorry's parent components)."""
    return frozenset({c.id for c in config.components()} | {g.id for g in config.groups})


def parse_time(value: object, field: str) -> float:
    """ISO-8601 (Z or offset; naive means UTC) or epoch seconds (number or numeric string) -> epoch float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(field, "must be an ISO-8601 timestamp or epoch seconds")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > TIME_TEXT_MAX:
            raise InputError(field, "is too long for a timestamp")
        if NUMERIC.fullmatch(text):
            # A bare number is epoch seconds (`date +%s`), never an ISO basic date like 20261201.
            value = float(text)
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise InputError(field, f"not an ISO-8601 timestamp: {text!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            try:
                value = moment.timestamp()
            except (OverflowError, OSError, ValueError):
                raise InputError(field, "is out of range") from None
    epoch = float(value)
    if not math.isfinite(epoch) or not 0 <= epoch <= EPOCH_MAX:
        raise InputError(field, "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return epoch


def parse_notice(body: object, known: Collection[str], now: float) -> NoticeInput:
    """A new notice: type, state (default by type and schedule), subject, content (default by state), components, schedule."""
    obj = json_object(body, ("type", "state", "subject", "content", "components", "begins_at", "ends_at"))
    if "type" not in obj:
        raise InputError("type", "required: planned or unplanned")
    type_ = choice_field(obj, "type", tuple(STATES))
    state = choice_field(obj, "state", STATES[type_]) if "state" in obj else DEFAULT_STATE[type_]
    subject = _subject(obj)
    components = _components(obj["components"], known, "components") if "components" in obj else ()
    begins_at = ends_at = None
    if type_ == "planned":
        for key in ("begins_at", "ends_at"):
            if obj.get(key) is None:
                raise InputError(key, "required for planned maintenance")
        begins_at, ends_at = parse_time(obj["begins_at"], "begins_at"), parse_time(obj["ends_at"], "ends_at")
        ordered(begins_at, ends_at, "ends_at")
        if ends_at <= now:  # the page never showed it: there is nothing to announce
            raise InputError("ends_at", "is in the past: this maintenance is already over")
        if begins_at <= now:
            state = _started(state if "state" in obj else None)
    else:
        _no_schedule(obj)
    content = text_field(obj, "content", CONTENT_MAX, multiline=True) if "content" in obj else DEFAULT_CONTENT[state]
    return NoticeInput(type_, state, subject, content, components, begins_at, ends_at)


def parse_notice_patch(body: object, known: Collection[str], notice: Notice, now: float) -> NoticePatch:
    """Changes to an existing notice; the resulting schedule is checked against the stored one and the clock."""
    obj = json_object(body, ("subject", "begins_at", "ends_at", "components"))
    if not obj:
        raise InputError("body", "nothing to change: give subject, begins_at, ends_at or components")
    fields: dict[str, Any] = {}
    if "subject" in obj:
        fields["subject"] = _subject(obj)
    if notice.type == "planned":
        for key in ("begins_at", "ends_at"):
            if key in obj:
                if obj[key] is None:
                    raise InputError(key, "required for planned maintenance")
                fields[key] = parse_time(obj[key], key)
        begins = fields.get("begins_at", notice.begins_at)
        ends = fields.get("ends_at", notice.ends_at)
        if begins is not None and ends is not None and ("begins_at" in fields or "ends_at" in fields):
            ordered(begins, ends, "ends_at" if "ends_at" in fields else "begins_at")
        _moved_into_past(notice, fields, now)
    else:
        _no_schedule(obj)
    components = _components(obj["components"], known, "components") if "components" in obj else None
    return NoticePatch(fields, components)


def parse_update(body: object, notice: Notice) -> UpdateInput:
    """A progress update: state (one of the notice type's; default: unchanged) and required content."""
    obj = json_object(body, ("state", "content"))
    state = choice_field(obj, "state", STATES[notice.type]) if "state" in obj else notice.state
    if "content" not in obj:
        raise InputError("content", "required: the text of the update")
    return UpdateInput(state, text_field(obj, "content", CONTENT_MAX, multiline=True))


def parse_components(body: object, known: Collection[str]) -> tuple[str, ...]:
    """A {"components": [...]} body replacing a notice's component links."""
    obj = json_object(body, ("components",))
    if "components" not in obj:
        raise InputError("components", "required: a list of component ids")
    return _components(obj["components"], known, "components")


def json_object(body: object, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """The body as a JSON object with only allowed keys."""
    if not isinstance(body, dict):
        raise InputError("body", "must be a JSON object")
    for key in body:
        if key not in allowed:
            raise InputError(str(key), f"unknown field (expected one of {', '.join(allowed)})")
    return body


def choice_field(obj: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """A string that is one of choices."""
    value = obj[key]
    if not isinstance(value, str):
        raise InputError(key, f"must be a string: one of {', '.join(choices)}")
    if value not in choices:
        raise InputError(key, f"must be one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def text_field(obj: Mapping[str, Any], key: str, limit: int, *, multiline: bool) -> str:
    """A non-empty string of at most limit characters (stripped), free of control characters."""
    value = obj[key]
    if not isinstance(value, str):
        raise InputError(key, "must be a string")
    value = value.strip()
    if not value:
        raise InputError(key, "must not be empty")
    if len(value) > limit:
        raise InputError(key, f"must be at most {limit} characters (got {len(value)})")
    if CONTROL.search(value) or (not multiline and ("\n" in value or "\r" in value)):
        raise InputError(key, "must not contain control characters" + ("" if multiline else " or line breaks"))
    return value


def _subject(obj: Mapping[str, Any]) -> str:
    """The required one-line subject."""
    if "subject" not in obj:
        raise InputError("subject", "required: a one-line summary")
    return text_field(obj, "subject", SUBJECT_MAX, multiline=False)


def known_id(value: object, known: Collection[str], field: str) -> str:
    """A string naming one of the known ids."""
    if not isinstance(value, str):
        raise InputError(field, "must be a string (a component id)")
    if value not in known:
        raise InputError(field, f"unknown component {value[:80]!r}")
    return value


def _components(value: object, known: Collection[str], field: str) -> tuple[str, ...]:
    """A list of known component ids, duplicates dropped, order kept."""
    if not isinstance(value, list):
        raise InputError(field, "must be a list of component ids")
    return tuple(dict.fromkeys(known_id(v, known, f"{field}[{i}]") for i, v in enumerate(value)))


def ordered(start: float, end: float, field: str, start_name: str = "begins_at") -> None:
    """End strictly after start; field is the one the caller changed (reported)."""
    if end <= start:
        raise InputError(field, f"must be after {start_name}" if field == "ends_at" else "must be before ends_at")


def _started(state: str | None) -> str:
    """The state of a new maintenance whose start has passed: underway from now on, never a backdated schedule."""
    if state == "scheduled":
        raise InputError("state", "cannot be scheduled: begins_at is in the past (leave state out, or give underway)")
    return state or "underway"


def _moved_into_past(notice: Notice, fields: Mapping[str, Any], now: float) -> None:
    """A maintenance not yet over keeps its transitions ahead: the scheduler would otherwise stamp them in the past."""
    if notice.state in ENDED_STATES:
        return  # editing the record of a finished maintenance moves nothing
    if fields.get("ends_at", math.inf) <= now:
        raise InputError("ends_at", "is in the past: post a 'complete' update to end the maintenance now")
    if notice.state == "scheduled" and fields.get("begins_at", math.inf) <= now:
        raise InputError("begins_at", "is in the past: post an 'underway' update to start the maintenance now")


def _no_schedule(obj: Mapping[str, Any]) -> None:
    """Unplanned notices have no schedule: begins_at/ends_at belong to planned maintenance."""
    for key in ("begins_at", "ends_at"):
        if key in obj:
            raise InputError(key, "only planned maintenance has a schedule")
