"""Two-part SVG status badges (shields.io style) for the page, a group or a component."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bridge.model import GroupView, Snapshot, Status
from bridge.render.atom import clean
from bridge.render.statuspage_components import group_component_status, indicator

SVG = "http://www.w3.org/2000/svg"
CONTENT_TYPE = "image/svg+xml"
HEIGHT = 20
PAD = 6  # horizontal padding each side of a text
LABEL_COLOUR = "#555555"
# All colours keep white text at a contrast of at least 4.5:1 (WCAG AA); the text always names the state.
GREEN, GOLD, ORANGE, RED, BLUE, GREY = "#2e7d32", "#8a6d00", "#c2410c", "#b91c1c", "#1d4ed8", "#595959"

PAGE_MESSAGE: dict[str, tuple[str, str]] = {
    "none": ("operational", GREEN),
    "maintenance": ("maintenance", BLUE),
    "minor": ("degraded", GOLD),
    "major": ("partial outage", ORANGE),
    "critical": ("major outage", RED),
}
STATUS_MESSAGE: dict[Status, tuple[str, str]] = {
    Status.UP: ("up", GREEN),
    Status.PARTIAL: ("degraded", GOLD),
    Status.DOWN: ("down", RED),
    Status.MAINTENANCE: ("maintenance", BLUE),
    Status.NODATA: ("no data", GREY),
}
GROUP_MESSAGE: dict[str, tuple[str, str]] = {
    "degraded_performance": ("degraded", GOLD),
    "partial_outage": ("partial outage", ORANGE),
    "under_maintenance": ("maintenance", BLUE),
    "operational": ("up", GREEN),
}

# Rough Verdana 11px advance widths; textLength makes the renderer fit the text to exactly this box.
_NARROW = set("fijlrtI!|.,:;'()[] ")
_WIDE = set("mwMW@%")


def text_width(text: str) -> float:
    """Estimated rendered width of text in pixels."""
    return sum(4.0 if ch in _NARROW else 10.0 if ch in _WIDE else 7.6 if ch.isupper() else 6.8 for ch in text)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    """Append an SVG element (attribute names with "_" become "-")."""
    el = ET.SubElement(parent, tag, {k.replace("_", "-"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def render(label: str, message: str, colour: str) -> bytes:
    """A badge: label on grey, message on colour; accessible name "label: message"."""
    label, message = clean(label), clean(message)
    lw, mw = text_width(label), text_width(message)
    left, right = round(lw + 2 * PAD), round(mw + 2 * PAD)
    width = left + right
    name = f"{label}: {message}"
    # Plain tags under an xmlns attribute: ElementTree's default_namespace rejects unprefixed attributes.
    svg = ET.Element("svg", {"xmlns": SVG, "width": str(width), "height": str(HEIGHT)})
    svg.set("role", "img")
    svg.set("aria-label", name)
    _el(svg, "title", name)
    # Rounded outline in the message colour, the label drawn over it, its inner corners squared off.
    _el(svg, "rect", width=width, height=HEIGHT, rx=3, fill=colour)
    _el(svg, "rect", width=left, height=HEIGHT, rx=3, fill=LABEL_COLOUR)
    _el(svg, "rect", x=left - 4, width=4, height=HEIGHT, fill=LABEL_COLOUR)
    g = _el(svg, "g", fill="#fff", text_anchor="middle", font_family="Verdana,Geneva,DejaVu Sans,sans-serif",
            font_size=11)
    _el(g, "text", label, x=left / 2, y=14, textLength=round(lw))
    _el(g, "text", message, x=left + right / 2, y=14, textLength=round(mw))
    return ET.tostring(svg, encoding="utf-8", xml_declaration=False)


def _stale(message: str, colour: str, stale: bool) -> tuple[str, str]:
    """Stale data is said in words and greyed: we cannot vouch for it."""
    return (f"{message} (stale)", GREY) if stale else (message, colour)


def page_badge(snap: Snapshot) -> bytes:
    """The whole page: its state, worded as the Statuspage indicator rolls it up; grey "unknown" when unknown."""
    if snap.page.state == "unknown":
        return render("status", "unknown", GREY)
    return render("status", *PAGE_MESSAGE[indicator(snap)])


def _group_message(g: GroupView) -> tuple[str, str]:
    """A group's message: a mixed group says how bad its worst child is."""
    if g.status is Status.PARTIAL:
        return GROUP_MESSAGE[group_component_status(g)]
    return STATUS_MESSAGE[g.status]


def item_badge(snap: Snapshot, item_id: str) -> bytes | None:
    """A component's (or group's) badge labelled with its name; None when the id is unknown."""
    for g in snap.groups:
        if g.id == item_id:
            stale = any(c.stale for c in g.components)
            return render(g.name, *_stale(*_group_message(g), stale))
        for c in g.components:
            if c.id == item_id:
                return render(c.name, *_stale(*STATUS_MESSAGE[c.status], c.stale))
    return None
