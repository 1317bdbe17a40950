"""Validation of override input (API bodies and CLI options alike): the public message and the private reason."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.admin_input import InputError, choice_field, json_object, known_id, ordered, parse_time, text_field
from bridge.config import Config
from bridge.model import Status
from bridge.notices import OVERRIDE_STATUSES, Override

MESSAGE_MAX = 1_000  # shown inline on the page ("Shown: Down (override: MESSAGE, until ...)")
REASON_MAX = 1_000
OVERRIDE_VALUES = tuple(s.value for s in OVERRIDE_STATUSES)
OVERRIDE_FIELDS = ("status", "starts_at", "ends_at", "message", "reason")  # what a PATCH may change
TEXT_MAX = {"message": MESSAGE_MAX, "reason": REASON_MAX}


@dataclass(frozen=True)
class OverrideInput:
    """A validated new override: message is shown to the public, reason only to administrators."""

    component_id: str
    status: Status
    starts_at: float
    ends_at: float | None
    reason: str | None
    message: str | None


def component_ids(config: Config) -> frozenset[str]:
    """Ids an override may name: components only, as the shown status is per component."""
    return frozenset(c.id for c in config.components())


def parse_override(body: object, components: Collection[str], now: float) -> OverrideInput:
    """A new override: component, status, starts_at (default now), optional ends_at, message and reason."""
    obj = json_object(body, ("component", *OVERRIDE_FIELDS))
    if "component" not in obj:
        raise InputError("component", "required: a component id")
    component = known_id(obj["component"], components, "component")
    if "status" not in obj:
        raise InputError("status", f"required: one of {', '.join(OVERRIDE_VALUES)}")
    fields = _fields(obj, now)
    starts_at, ends_at = fields.get("starts_at", now), fields.get("ends_at")
    if ends_at is not None:
        _window(starts_at, ends_at, now, "ends_at")
    return OverrideInput(component, fields["status"], starts_at, ends_at, fields.get("reason"), fields.get("message"))


def parse_override_patch(body: object, override: Override, now: float) -> dict[str, Any]:
    """Changes to a stored override (its component is fixed); a changed window is checked against the stored one."""
    obj = json_object(body, OVERRIDE_FIELDS)
    if not obj:
        raise InputError("body", f"nothing to change: give {', '.join(OVERRIDE_FIELDS)}")
    fields = _fields(obj, now)
    ends_at = fields.get("ends_at", override.ends_at)
    if ends_at is not None and ("starts_at" in fields or "ends_at" in fields):
        _window(fields.get("starts_at", override.starts_at), ends_at, now, "ends_at" if "ends_at" in fields else "starts_at")
    return fields


def _fields(obj: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The override fields present in obj, each checked alone; null means now (starts_at) or none (the others)."""
    fields: dict[str, Any] = {}
    if "status" in obj:
        fields["status"] = Status(choice_field(obj, "status", OVERRIDE_VALUES))
    for key, default in (("starts_at", now), ("ends_at", None)):
        if key in obj:
            fields[key] = default if obj[key] is None else parse_time(obj[key], key)
    for key, limit in TEXT_MAX.items():
        if key in obj:
            # Empty text is refused rather than stored: null is the one way to say "none".
            fields[key] = None if obj[key] is None else text_field(obj, key, limit, multiline=False)
    return fields


def _window(starts_at: float, ends_at: float, now: float, field: str) -> None:
    """The end after the start and still ahead: an override that has already ended would never show."""
    ordered(starts_at, ends_at, field, "starts_at")
    if ends_at <= now:
        raise InputError("ends_at", "is in the past: the override would never show")
