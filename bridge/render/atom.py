"""The notices as an Atom 1.0 feed (RFC 4287): one entry per notice with its updates."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bridge.model import Snapshot
from bridge.notices import Notice, notice_url
from bridge.render.oxford import iso_utc

ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml"
LIMIT = 50  # entries: the most recently updated notices; the page keeps the full history
# A fixed tagging date keeps the feed id the same forever (RFC 4151 needs one; any past date will do).
FEED_TAG_DATE = "2025"
FALLBACK_AUTHORITY = "status-bridge.invalid"

STATE_LABEL = {
    "investigating": "Investigating",
    "identified": "Identified",
    "recovering": "Recovering",
    "resolved": "Resolved",
    "false_alarm": "False alarm",
    "scheduled": "Scheduled",
    "underway": "Underway",
    "complete": "Complete",
}
# Characters XML 1.0 cannot carry at all, even escaped; plugin output and admin input may hold them.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    """text without the characters XML 1.0 forbids (ElementTree would write them and break the document)."""
    return _ILLEGAL.sub("\ufffd", text)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append an Atom element with optional text and attributes."""
    el = ET.SubElement(parent, tag, {k: clean(v) for k, v in attrs.items()})
    if text is not None:
        el.text = clean(text)
    return el


def _authority(snap: Snapshot) -> str:
    """The host name tag: URIs are minted under (the page's host)."""
    host = urlsplit(snap.page_url).hostname if snap.page_url else None
    return host or FALLBACK_AUTHORITY


def _day(epoch: float) -> str:
    """YYYY-MM-DD (UTC) for a tag: URI date."""
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return FEED_TAG_DATE


def _label(state: str) -> str:
    """A human label for a notice state."""
    return STATE_LABEL.get(state, state.replace("_", " ").capitalize())


def entry_content(n: Notice) -> str:
    """The entry body as HTML: the window for maintenance, then every update, newest first."""
    parts: list[str] = []
    if n.type == "planned" and (n.begins_at is not None or n.ends_at is not None):
        begins, ends = iso_utc(n.begins_at), iso_utc(n.ends_at)
        window = f"{begins or 'start to be announced'} to {ends}" if ends else f"from {begins}, no end time set"
        parts.append(f"<p>Scheduled: {html.escape(window)}</p>")
    items = [
        f"<li><strong>{html.escape(_label(u.state))}</strong> ({html.escape(iso_utc(u.created_at) or '')}): "
        f"{html.escape(u.content)}</li>"
        for u in reversed(n.updates)
    ]
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    return "".join(parts)


def _entry(feed: ET.Element, snap: Snapshot, n: Notice, authority: str) -> None:
    """Append one notice as an entry."""
    entry = _el(feed, "entry")
    _el(entry, "id", f"tag:{authority},{_day(n.created_at)}:notices/{n.id}")
    _el(entry, "title", f"{n.subject} ({_label(n.state)})")
    _el(entry, "updated", iso_utc(n.updated_at) or "")
    _el(entry, "published", iso_utc(n.created_at) or "")
    _el(entry, "link", rel="alternate", type="text/html", href=notice_url(snap.page_url, n))
    kind = "maintenance" if n.type == "planned" else "incident"
    _el(entry, "category", term=kind, label=kind.capitalize())
    # type="html": the markup travels as escaped text, so nothing in it can break the XML.
    _el(entry, "content", entry_content(n), type="html")


def atom_feed(snap: Snapshot, limit: int = LIMIT) -> bytes:
    """GET /notices.atom: the most recently updated notices first."""
    authority = _authority(snap)
    notices = sorted(snap.notices, key=lambda n: (n.updated_at, n.id), reverse=True)[:limit]
    base = snap.page_url.rstrip("/")
    # Not the build time: an unchanged feed must keep its bytes (and ETag) across rebuilds.
    known = [c.since for g in snap.groups for c in g.components if c.since is not None]
    updated = notices[0].updated_at if notices else min(known, default=snap.generated_at)
    # Plain tags under an xmlns attribute: ElementTree's default_namespace rejects unprefixed attributes.
    feed = ET.Element("feed", {"xmlns": ATOM})
    _el(feed, "id", f"tag:{authority},{FEED_TAG_DATE}:notices")
    _el(feed, "title", f"{snap.page_name}: incidents and maintenance")
    _el(feed, "updated", iso_utc(updated) or "")
    author = _el(feed, "author")
    _el(author, "name", snap.page_name)
    _el(feed, "link", rel="self", type=CONTENT_TYPE, href=f"{base}/notices.atom")
    _el(feed, "link", rel="alternate", type="text/html", href=base or "/")
    _el(feed, "generator", "status-bridge")
    for n in notices:
        _entry(feed, snap, n, authority)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
