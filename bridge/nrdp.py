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
TYPE_XML, TYPE_JSON = "TYPE_XML", "TYPE_JSON"  # NRDP's output types, compared exactly as NRDP does
XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
_ESCAPED = re.compile(r"\\([\\n])")
_XML_ENTITIES = {'"': "&quot;", "'": "&apos;"}

Record = dict[str, Any]


class NrdpError(Exception):
    """A request NRDP refuses: NRDP's message constant and our explanation (its "information")."""

    def __init__(self, nrdp_message: str, message: str, detail: bool = True) -> None:
        super().__init__(message)
        self.nrdp_message, self.message = nrdp_message, message
        self.detail = detail  # add NRDP's "information" member (NRDP does so for bad data only)


def php_empty(value: str) -> bool:
    """PHP's empty() for a request string: "" and "0" are empty."""
    return value in ("", "0")


def grab(form: Mapping[str, str], names: tuple[str, ...]) -> str:
    """NRDP's grab_json()/grab_xml(): the first of names that is present at all (even empty), else ""."""
    for name in names:
        if name in form:
            return form[name]
    return ""


def output_type(form: Mapping[str, str]) -> str:
    """NRDP's output_type(): a non-empty output_type field as given, else TYPE_XML when xml data came, TYPE_JSON
    for json data, else TYPE_XML."""
    explicit = form.get("output_type", "")
    if not php_empty(explicit):
        return explicit
    if not php_empty(grab(form, XML_FIELDS)):
        return TYPE_XML
    return TYPE_JSON if not php_empty(grab(form, JSON_FIELDS)) else TYPE_XML


def answers_json(form: Mapping[str, str]) -> bool:
    """NRDP answers in JSON only for output type TYPE_JSON (exactly); anything else gets XML."""
    return output_type(form) == TYPE_JSON


def parse_submission(form: Mapping[str, str], now: float) -> tuple[list[Result], list[ItemError]]:
    """cmd=submitcheck's payload, read as output_type() says (so xml wins over json unless TYPE_JSON is asked for)
    -> valid results and per-item errors."""
    kind = output_type(form)
    if kind == TYPE_XML:
        xml = grab(form, XML_FIELDS)
        if php_empty(xml):  # NRDP parses the empty string as XML and fails the same way
            raise NrdpError("BAD XML", "no check results: send them in an xml field (or json, with output_type=TYPE_JSON)")
        records = records_from_xml(xml)
    elif kind == TYPE_JSON:
        records = records_from_json(grab(form, JSON_FIELDS))
    else:
        raise NrdpError("NO DATA", f"output_type must be {TYPE_XML} or {TYPE_JSON}: no check results were read")
    return collect(records, to_result, now)


def records_from_json(text: str) -> list[Record]:
    """{"checkresults": [{"checkresult": {"type": ...}, "hostname": ..., ...}]} -> flat records."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise NrdpError("BAD JSON", f"invalid JSON: {str(e)[:200]}") from None
    items = doc.get("checkresults") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise NrdpError("BAD JSON", 'expected {"checkresults": [...]}')
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
        raise NrdpError("BAD XML", "XML with a DTD or entity declarations is not accepted") from None
    except (ParseError, ValueError) as e:
        raise NrdpError("BAD XML", f"invalid XML: {str(e)[:200]}") from None
    if root.tag != "checkresults":
        raise NrdpError("BAD XML", f"root element must be <checkresults>, not <{root.tag[:40]}>")
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
    """NRDP sends states as strings ("1", " 2 ", "0002") or numbers: the whole number, then range-checked."""
    if isinstance(value, str):
        text = value.strip()
        top, digits = 2 if is_host else 3, text.lstrip("0") or "0"
        if not text.isdigit() or not text.isascii():
            raise InputError(field, f"must be an integer 0-{top} (got {text[:20]!r})")
        if len(digits) > 18:  # out of range whatever it is: int() of a huge one would only cost time
            raise InputError(field, f"must be an integer 0-{top} (got a {len(digits)}-digit number)")
        value = int(digits)
    return check_state(value, is_host, field)


def unescape(output: str) -> str:
    """Nagios check-result escaping: a literal \\n is a line break and \\\\ a backslash."""
    return _ESCAPED.sub(lambda m: "\n" if m.group(1) == "n" else "\\", output)


def hello() -> dict[str, Any]:
    """cmd=hello's answer, in NRDP's shape."""
    return {"response": {"status": 0, "message": "OK", "product": PRODUCT, "version": __version__}}


def processed(count: int, errors: list[ItemError]) -> dict[str, Any]:
    """submitcheck's answer, "N checks processed" as NRDP 2.x says it; rejected items named in "information"."""
    body: dict[str, Any] = {"result": {"status": 0, "message": "OK", "meta": {"output": f"{count} checks processed"}}}
    if errors:
        body["result"]["information"] = rejected_summary(errors)
    return body


def rejected_summary(errors: list[ItemError]) -> str:
    """One line naming the first few rejected items."""
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return f"{len(errors)} check results rejected: {shown}" + ("; ..." if len(errors) > 5 else "")


def error_body(err: NrdpError) -> dict[str, Any]:
    """NRDP's handle_api_error() body: {"result": {"status": -1, "message": ..., "information": ...}}."""
    result: dict[str, Any] = {"status": -1, "message": err.nrdp_message}
    if err.detail:
        result["information"] = err.message
    return {"result": result}


def render(body: dict[str, Any], json_answer: bool, pretty: bool = False) -> tuple[bytes, str]:
    """(bytes, content type) as NRDP's output_response() writes them (pretty: PHP's JSON_PRETTY_PRINT)."""
    if json_answer:
        text = json.dumps(body, ensure_ascii=False, indent=4 if pretty else None, separators=None if pretty else (",", ":"))
        return text.encode(), JSON_TYPE
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
