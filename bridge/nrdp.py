"""NRDP (Nagios Remote Data Processor) protocol: payload parsing and NRDP-shaped answers (pure, no I/O)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bridge import __version__
from bridge.admin_input import InputError
from bridge.passive import (
    ItemError,
    Result,
    check_name,
    check_state,
    check_time,
    collect,
)

PRODUCT = "status-bridge"
# NRDP's precedence (grab_json/grab_xml): json over jsondata over the legacy JSONDATA, likewise for xml.
JSON_FIELDS = ("json", "jsondata", "JSONDATA")
XML_FIELDS = ("xml", "xmldata", "XMLDATA")
XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
_ESCAPED = re.compile(r"\\([\\n])")
_XML_ENTITIES = {'"': "&quot;", "'": "&apos;"}

Record = dict[str, Any]


class NrdpError(Exception):
    """A request NRDP would refuse: HTTP status, NRDP's message constant, our message and field."""

    def __init__(self, status: int, nrdp_message: str, message: str, field: str | None = None, detail: bool = True):
        super().__init__(message)
        self.status, self.nrdp_message, self.message, self.field = status, nrdp_message, message, field
        self.detail = detail  # add NRDP's "information" member (NRDP does so for bad input only)


def _grab(form: Mapping[str, str], names: tuple[str, ...]) -> str:
    """The first non-empty field of names, in NRDP's precedence; "" when none."""
    for name in names:
        value = form.get(name, "")
        if value.strip():
            return value
    return ""


def answers_xml(form: Mapping[str, str]) -> bool:
    """NRDP's output_type(): an explicit output_type, else XML when xml data was posted, JSON for json, else XML."""
    explicit = form.get("output_type", "").strip()
    if explicit:
        # NRDP compares against its constant TYPE_JSON; anything else falls back to XML.
        return explicit.upper() not in ("TYPE_JSON", "JSON")
    if _grab(form, XML_FIELDS):
        return True
    return not _grab(form, JSON_FIELDS)


def parse_submission(form: Mapping[str, str], now: float) -> tuple[list[Result], list[ItemError]]:
    """cmd=submitcheck's payload (xml wins over json, as in NRDP) -> valid results and per-item errors."""
    xml, js = _grab(form, XML_FIELDS), _grab(form, JSON_FIELDS)
    if xml:
        records = records_from_xml(xml)
    elif js:
        records = records_from_json(js)
    else:
        raise NrdpError(400, "NO DATA", "submitcheck needs check results in a json or xml field", "json")
    return collect(records, to_result, now)


def records_from_json(text: str) -> list[Record]:
    """{"checkresults": [{"checkresult": {"type": ...}, "hostname": ..., ...}]} -> flat records."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise NrdpError(400, "BAD JSON", f"invalid JSON: {str(e)[:200]}", "json") from None
    items = doc.get("checkresults") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise NrdpError(400, "BAD JSON", 'expected {"checkresults": [...]}', "json.checkresults")
    records: list[Record] = []
    for item in items:
        if not isinstance(item, dict):
            records.append({"invalid": "must be an object"})
            continue
        meta = item.get("checkresult")
        kind = meta.get("type", "host") if isinstance(meta, dict) else "host"
        records.append({**{k: item[k] for k in ("hostname", "servicename", "state", "output", "time") if k in item}, "type": kind})
    return records


def records_from_xml(text: str) -> list[Record]:
    """NRDP's <checkresults><checkresult type='service'>...</checkresult></checkresults> -> flat records."""
    try:
        # No DTD at all: NRDP clients never send one, and entities are how XML bombs work.
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException:
        raise NrdpError(400, "BAD XML", "XML with a DTD or entity declarations is not accepted", "xml") from None
    except (ParseError, ValueError) as e:
        raise NrdpError(400, "BAD XML", f"invalid XML: {str(e)[:200]}", "xml") from None
    if root.tag != "checkresults":
        raise NrdpError(400, "BAD XML", f"root element must be <checkresults>, not <{root.tag[:40]}>", "xml")
    return [_xml_record(cr) for cr in root.findall("checkresult")]


def _xml_record(cr: Element) -> Record:
    """One <checkresult>: its type attribute and child elements (absent children stay absent)."""
    rec: Record = {"type": cr.get("type", "host")}
    for name in ("hostname", "servicename", "state", "output", "time"):
        child = cr.find(name)
        if child is not None:
            rec[name] = "".join(child.itertext())
    return rec


def to_result(rec: Record, index: int, now: float) -> Result:
    """Validate one flat record; InputError names checkresults[index].FIELD."""
    at = f"checkresults[{index}]"
    if "invalid" in rec:
        raise InputError(at, rec["invalid"])
    kind = rec.get("type")
    if kind not in ("host", "service"):
        raise InputError(f"{at}.type", f'must be "host" or "service" (got {str(kind)[:40]!r})')
    host = check_name(_strip(rec.get("hostname")), f"{at}.hostname")
    service = check_name(_strip(rec.get("servicename")), f"{at}.servicename") if kind == "service" else None
    state = _state(rec.get("state"), kind == "host", f"{at}.state")
    output = rec.get("output")
    output = "" if output is None else output  # NRDP's strval(null)
    if not isinstance(output, str):
        raise InputError(f"{at}.output", "must be a string")
    when = rec.get("time")
    timestamp = check_time(None if when in (None, "") else when, f"{at}.time", now)
    return Result(host, service, state, unescape(output), timestamp)


def _strip(value: object) -> object:
    """Strip surrounding whitespace from strings (XML layout and piped send_nrdp lines add it)."""
    return value.strip() if isinstance(value, str) else value


def _state(value: object, is_host: bool, field: str) -> int:
    """NRDP sends states as strings ("1") or numbers."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise InputError(field, f"must be an integer 0-{2 if is_host else 3} (got {text[:20]!r})")
        value = int(text[:3])
    return check_state(value, is_host, field)


def unescape(output: str) -> str:
    """Nagios check-result escaping: a literal \\n is a line break and \\\\ a backslash."""
    return _ESCAPED.sub(lambda m: "\n" if m.group(1) == "n" else "\\", output)


def hello() -> dict[str, Any]:
    """cmd=hello's answer, in NRDP's shape."""
    return {"response": {"status": 0, "message": "OK", "product": PRODUCT, "version": __version__}}


def processed(count: int, xml: bool, errors: list[ItemError]) -> dict[str, Any]:
    """submitcheck's answer; NRDP's XML says "N checks processed." and its JSON omits the period."""
    body: dict[str, Any] = {
        "result": {"status": 0, "message": "OK", "meta": {"output": f"{count} checks processed{'.' if xml else ''}"}}
    }
    if errors and xml:
        body["result"]["information"] = rejected_summary(errors)
    elif errors:
        body["errors"] = [e._asdict() for e in errors]
    return body


def rejected_summary(errors: list[ItemError]) -> str:
    """One line naming the first few rejected items."""
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return f"{len(errors)} check results rejected: {shown}" + ("; ..." if len(errors) > 5 else "")


def error_body(err: NrdpError, xml: bool) -> dict[str, Any]:
    """NRDP's {"result": {"status": -1, "message": ...}}, plus our error member in JSON answers."""
    result: dict[str, Any] = {"status": -1, "message": err.nrdp_message}
    if err.detail:
        result["information"] = err.message
    body: dict[str, Any] = {"result": result}
    if not xml:
        ours: dict[str, Any] = {"status": err.status, "message": err.message}
        if err.field is not None:
            ours["field"] = err.field
        body["error"] = ours
    return body


def render(body: dict[str, Any], xml: bool) -> tuple[bytes, str]:
    """(bytes, content type) as NRDP's output_response() writes them."""
    if not xml:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), JSON_TYPE
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + _xml(body, 0)).encode(), XML_TYPE


def _xml(value: Any, depth: int) -> str:
    """NRDP's generate_xml_from_arr(): one element per key, 4-space indent; lists repeat the element."""
    if not isinstance(value, dict):
        return escape(str(value), _XML_ENTITIES)
    pad = " " * (4 * depth)
    out = []
    for key, el in value.items():
        for item in el if isinstance(el, list) else [el]:
            if isinstance(item, dict):
                out.append(f"{pad}<{key}>\n{_xml(item, depth + 1)}{pad}</{key}>\n")
            else:
                out.append(f"{pad}<{key}>{_xml(item, depth + 1)}</{key}>\n")
    return "".join(out)
