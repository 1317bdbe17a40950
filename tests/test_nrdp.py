"""/nrdp/: what NRDP clients send, answered as NRDP 2.x answers (HTTP 200, the outcome in NRDP's XML/JSON body).

The real clients' exact requests and parsing are replayed in tests/test_nrdp_clients.py; attacks on the body in
tests/test_nrdp_body.py.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote_to_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from defusedxml import DTDForbidden
from hypothesis import strategies as st

import bridge.nrdp as nrdp_module
from bridge import __version__
from bridge.admin_input import InputError
from bridge.nrdp import records_from_json, to_result, unescape
from bridge.nrdp_form import FIELDS as FORM_FIELDS
from bridge.nrdp_form import UrlencodedSplitter, unquote
from bridge.views_passive import PASSIVE
from tests.test_passive import T0, Clock, Server, feed, make, publish

JSON_OK = {"result": {"status": 0, "message": "OK", "meta": {"output": "2 checks processed"}}}
XML_OK = (
    '<?xml version="1.0" encoding="utf-8"?>\n<result>\n    <status>0</status>\n    <message>OK</message>\n'
    "    <meta>\n        <output>2 checks processed</output>\n    </meta>\n</result>\n"
)
BAD_TOKEN_XML = '<?xml version="1.0" encoding="utf-8"?>\n<result>\n    <status>-1</status>\n    <message>BAD TOKEN</message>\n</result>\n'
CHECKS_JSON = json.dumps(
    {
        "checkresults": [
            {"checkresult": {"type": "service", "checktype": "1"}, "hostname": "web-1", "servicename": "HTTP", "state": "2", "output": "CRITICAL - refused | t=1"},
            {"checkresult": {"type": "host"}, "hostname": "db-1", "state": "0", "output": "UP"},
        ]
    }
)
CHECKS_XML = (
    "<?xml version='1.0'?>\n<checkresults>\n"
    "  <checkresult type='service' checktype='1'><hostname>web-1</hostname><servicename>HTTP</servicename>"
    "<state>2</state><output>CRITICAL - refused</output></checkresult>\n"
    "  <checkresult type='host' checktype='1'><hostname>db-1</hostname><state>0</state><output>UP</output></checkresult>\n"
    "</checkresults>"
)


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(make(tmp_path))


async def nrdp(client, data, status=200, path="/nrdp/", headers=None):
    resp = await client.post(path, data=data, headers=headers)
    text = await resp.text()
    assert resp.status == status, text
    return resp, text


def held(client):
    store = client.server.app[PASSIVE].store
    return {**{(h, None): c.current_state for h, c in store.hosts.items()}, **{k: c.current_state for k, c in store.services.items()}}


async def test_hello_like_nrdp(client):
    resp, text = await nrdp(client, {"cmd": "hello"})
    assert resp.headers["Content-Type"].startswith("text/xml")
    assert text == (
        '<?xml version="1.0" encoding="utf-8"?>\n<response>\n    <status>0</status>\n    <message>OK</message>\n'
        f"    <product>status-bridge</product>\n    <version>{__version__}</version>\n</response>\n"
    )
    resp = await client.get("/nrdp/?cmd=hello&output_type=TYPE_JSON")  # GET works for hello, as in NRDP
    assert await resp.json() == {"response": {"status": 0, "message": "OK", "product": "status-bridge", "version": __version__}}


@pytest.mark.parametrize("field", ["json", "jsondata", "JSONDATA"])
async def test_submitcheck_json(client, field):
    resp, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", field: CHECKS_JSON})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert json.loads(text) == JSON_OK
    assert held(client) == {("web-1", "HTTP"): 2, ("db-1", None): 0}
    assert client.server.app[PASSIVE].store.services[("web-1", "HTTP")].plugin_output == "CRITICAL - refused"


@pytest.mark.parametrize("field", ["xml", "xmldata", "XMLDATA"])
async def test_submitcheck_xml(client, field):
    resp, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", field: CHECKS_XML})
    assert resp.headers["Content-Type"].startswith("text/xml")
    assert text == XML_OK
    assert held(client) == {("web-1", "HTTP"): 2, ("db-1", None): 0}


async def test_results_reach_the_page(client):
    await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON})
    await publish(client)
    assert (await feed(client))["website"]["status"] == "down"


OTHER_JSON = json.dumps({"checkresults": [{"checkresult": {"type": "service"}, "hostname": "web-1", "servicename": "HTTP", "state": "0"}]})


async def test_xml_wins_over_json_unless_output_type_says_json(client):
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": OTHER_JSON, "xml": CHECKS_XML})
    assert text == XML_OK  # NRDP's output_type(): xml data first
    assert held(client)[("web-1", "HTTP")] == 2
    # output_type=TYPE_JSON picks both the answer and the payload NRDP reads: the json field.
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": OTHER_JSON, "xml": CHECKS_XML, "output_type": "TYPE_JSON"})
    assert json.loads(text)["result"]["meta"]["output"] == "1 checks processed"
    assert held(client)[("web-1", "HTTP")] == 0


@pytest.mark.parametrize("output_type", ["json", "JSON", "type_json", " TYPE_JSON"])
async def test_output_type_is_compared_exactly_as_nrdp_does(client, output_type):
    # NRDP compares against its constant TYPE_JSON: anything else answers in XML and reads no json payload.
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON, "output_type": output_type})
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<result>') and "<message>NO DATA</message>" in text
    assert held(client) == {}


async def test_pretty_json_like_php(client):
    _, text = await nrdp(client, {"cmd": "hello", "output_type": "TYPE_JSON", "pretty": "1"})
    assert text.startswith('{\n    "response": {\n        "status": 0,')


async def test_multipart_form(client):
    form = aiohttp.FormData()
    form.add_field("token", "t")
    form.add_field("cmd", "submitcheck")
    form.add_field("xml", CHECKS_XML.encode(), filename="results.xml", content_type="text/xml")  # curl -F xml=@file
    _, text = await nrdp(client, form)
    assert text == XML_OK


@pytest.mark.parametrize(
    "ctype, body",
    [
        ("multipart/form-data", b"garbage"),
        ("multipart/form-data; boundary=xx", b"garbage"),
        ("multipart/form-data; boundary=xx", b'--xx\r\nContent-Disposition: form-data; name="cmd"\r\n\r\nhello'),
        ("multipart/mixed; boundary=xx", b"--xx\r\nContent-Type: multipart/mixed; boundary=yy\r\n\r\n--yy\r\n\r\nx\r\n--yy--\r\n--xx--\r\n"),
    ],
)
async def test_malformed_multipart(client, ctype, body):
    resp = await client.post("/nrdp/", data=body, headers={"Content-Type": ctype})
    assert resp.status == 200
    assert "<status>-1</status>\n    <message>BAD DATA</message>" in await resp.text()


async def test_send_nrdp_sh_raw_body_and_double_slash(client):
    # send_nrdp.sh: curl -d "token=..&cmd=submitcheck&xml=$xml" "$url/" with the XML not URL-encoded,
    # except & < > in the output, and a url documented as http://host/nrdp/.
    xml = (
        "<?xml version='1.0'?>\n    <checkresults>\n    <checkresult type='service' checktype='1'>\n"
        "        <servicename>HTTP</servicename><hostname>web-1</hostname>\n    <state>1</state>\n"
        "    <output><![CDATA[WARNING %26 slow %3C 5s]]></output>\n    </checkresult>\n    </checkresults>"
    )
    resp = await client.post("/nrdp//", data=f"token=t&cmd=submitcheck&xml={xml}".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200 and "<status>0</status>" in await resp.text()
    assert client.server.app[PASSIVE].store.services[("web-1", "HTTP")].plugin_output == "WARNING & slow < 5s"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"token": "nope", "cmd": "submitcheck", "json": CHECKS_JSON}, "BAD TOKEN"),
        ({"cmd": "submitcheck", "json": CHECKS_JSON}, "NO TOKEN"),
        ({"token": " ", "cmd": "submitcheck", "json": CHECKS_JSON}, "NO TOKEN"),
        ({"token": "t", "json": CHECKS_JSON}, "NO COMMAND"),
        ({"json": CHECKS_JSON}, "NO TOKEN"),  # NRDP checks the token before looking for a handler
        ({"token": "t", "cmd": "submitcmd", "json": "{}"}, "COMMANDS DISABLED"),
        ({"token": "t", "cmd": "submitrawcmd", "json": "{}"}, "COMMANDS DISABLED"),
        ({"token": "t", "cmd": "frobnicate", "json": "{}"}, "NO REQUEST HANDLER"),
        ({"token": "t", "cmd": "submitcheck", "json": "", "output_type": "TYPE_JSON"}, "BAD JSON"),
        ({"token": "t", "cmd": "submitcheck", "json": "{not json"}, "BAD JSON"),
        ({"token": "t", "cmd": "submitcheck", "json": '{"checkresults": 5}'}, "BAD JSON"),
        ({"token": "t", "cmd": "submitcheck", "json": '{"checkresults": [{"hostname": "web-1", "state": "9"}]}'}, "BAD DATA"),
    ],
)
async def test_json_errors(client, data, message):
    """Every refusal is HTTP 200 with NRDP's {"result": {"status": -1, "message": ...}}, as NRDP 2.x answers."""
    # A bad token first in the body ends the request before the json field says "JSON": Accept does then.
    _, text = await nrdp(client, data, headers={"Accept": "application/json"})
    body = json.loads(text)
    assert set(body) == {"result"} and body["result"]["status"] == -1 and body["result"]["message"] == message
    assert held(client) == {}


async def test_submitcheck_without_data_is_bad_xml_as_in_nrdp(client):
    # NRDP's default output type is XML, and it parses the missing xml field as XML.
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck"})
    assert "<status>-1</status>\n    <message>BAD XML</message>\n    <information>no check results" in text


async def test_bad_token_is_exactly_nrdps_answer(client):
    _, text = await nrdp(client, {"cmd": "submitcheck", "json": CHECKS_JSON, "token": "nope"})
    assert json.loads(text) == {"result": {"status": -1, "message": "BAD TOKEN"}}
    _, text = await nrdp(client, {"token": "nope", "cmd": "submitcheck", "XMLDATA": CHECKS_XML})
    assert text == BAD_TOKEN_XML  # send_nrdp.py parses this with minidom


async def test_no_tokens_configured(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, tokens=()))
    _, text = await nrdp(client, {"cmd": "submitcheck", "json": CHECKS_JSON, "token": "t"})
    assert json.loads(text)["result"] == {"status": -1, "message": "NO TOKENS"}
    _, text = await nrdp(client, {"cmd": "submitcheck", "json": CHECKS_JSON})
    assert json.loads(text)["result"] == {"status": -1, "message": "NO TOKEN"}  # NRDP's order: NO TOKEN first
    await nrdp(client, {"cmd": "hello"})  # hello never needs a token


async def test_disabled(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_enabled=False))
    # Refused before the body is read: the query (or Accept) chooses JSON, else NRDP's default XML.
    for data in ({"cmd": "hello"}, {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON}):
        _, text = await nrdp(client, data, path="/nrdp/?output_type=TYPE_JSON")
        assert json.loads(text) == {"result": {"status": -1, "message": "NOT ENABLED"}}
        _, text = await nrdp(client, data)
        assert "<status>-1</status>\n    <message>NOT ENABLED</message>" in text


async def test_body_limit(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_max_body=300))
    data = {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON + " " * 300}
    _, text = await nrdp(client, data)  # the unread body cannot choose JSON: NRDP's default, XML
    assert "<message>REQUEST TOO LARGE</message>" in text
    _, text = await nrdp(client, data, path="/nrdp/?output_type=TYPE_JSON")
    assert json.loads(text)["result"]["message"] == "REQUEST TOO LARGE"
    form = aiohttp.FormData()
    form.add_field("token", "t")
    form.add_field("xml", CHECKS_XML.encode() + b" " * 300, filename="x.xml")
    _, text = await nrdp(client, form)
    assert "<message>REQUEST TOO LARGE</message>" in text
    assert held(client) == {}


async def test_a_get_longer_than_apaches_request_line_limit_is_refused(client):
    # As on a stock NRDP install (Apache's LimitRequestLine 8190): large batches must be POSTed (docs/nrdp.md).
    resp = await client.get("/nrdp/", params={"token": "t", "cmd": "submitcheck", "XMLDATA": "x" * 9000})
    assert resp.status == 400 and held(client) == {}


async def test_get_submitcheck_is_accepted_as_nrdp_does(client):
    # send_nrdp.py sends every submission as a GET with the XML in the query string.
    resp = await client.get("/nrdp/", params={"token": "t", "cmd": "submitcheck", "XMLDATA": CHECKS_XML})
    assert resp.status == 200 and await resp.text() == XML_OK
    assert held(client) == {("web-1", "HTTP"): 2, ("db-1", None): 0}


@pytest.mark.parametrize(
    "xml, information",
    [
        ("<checkresults><checkresult>", "invalid XML"),
        ("not xml at all", "invalid XML"),
        ("<results/>", "root element must be &lt;checkresults&gt;"),
    ],
)
async def test_malformed_xml(client, xml, information):
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "xml": xml})
    assert "<message>BAD XML</message>" in text and information in text


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n<checkresults><checkresult type='host'><hostname>&lol9;</hostname><state>0</state></checkresult></checkresults>"
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    "<checkresults><checkresult type='host'><hostname>web-1</hostname><state>0</state><output>&xxe;</output></checkresult></checkresults>"
)


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "external-entity"])
async def test_entity_attacks_are_rejected(client, xml, monkeypatch):
    # Proven by where the parse stopped, not by how fast it was: at the DOCTYPE, before any entity is
    # declared, let alone expanded or fetched (defusedxml raises DTDForbidden from that very handler).
    raised: list[BaseException] = []
    real = nrdp_module.SafeET.fromstring

    def fromstring(text: str, **kw: object) -> object:
        try:
            return real(text, **kw)
        except BaseException as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(nrdp_module.SafeET, "fromstring", fromstring)
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "XMLDATA": xml})
    assert [type(e) for e in raised] == [DTDForbidden]
    assert "<message>BAD XML</message>" in text and "DTD" in text
    assert "root:" not in text and held(client) == {}


async def test_partial_batch_keeps_valid_results(client):
    doc = json.loads(CHECKS_JSON)
    doc["checkresults"].append({"checkresult": {"type": "service"}, "hostname": "web-1", "state": "1"})  # no servicename
    doc["checkresults"].append({"checkresult": {"type": "bogus"}, "hostname": "web-1", "state": "1"})
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": json.dumps(doc)})
    result = json.loads(text)["result"]
    assert {k: v for k, v in result.items() if k != "information"} == JSON_OK["result"]
    assert result["information"].startswith("2 check results rejected: checkresults[2].servicename: ")
    assert "; checkresults[3].type: " in result["information"]
    assert held(client) == {("web-1", "HTTP"): 2, ("db-1", None): 0}
    metrics = await (await client.get("/metrics")).text()
    assert 'status_bridge_passive_results_total{result="invalid"} 2.0' in metrics


async def test_nagios_escapes_time_and_host_type(aiohttp_client, tmp_path):
    clock = Clock()
    client = await aiohttp_client(make(tmp_path, clock))
    xml = (
        "<checkresults><checkresult type='service'><hostname> web-1 </hostname><servicename>HTTP</servicename>"
        f"<state> 1 </state><output>WARN\\nsecond line\\\\n|perf=1</output><time>{int(T0) - 60}</time></checkresult>"
        "<checkresult type='host'><hostname>web-1</hostname><servicename>ignored for hosts</servicename>"
        "<state>0</state></checkresult></checkresults>"
    )
    await nrdp(client, {"token": "t", "cmd": "submitcheck", "xml": xml})
    store = client.server.app[PASSIVE].store
    svc = store.services[("web-1", "HTTP")]
    assert (svc.plugin_output, svc.long_plugin_output, svc.last_check) == ("WARN", "second line\\n", int(T0) - 60)
    assert store.hosts["web-1"].current_state == 0 and store.hosts["web-1"].last_check == int(T0)


STATE_TEXT = st.text(alphabet="0123456789 +-.x\t\u0662", max_size=8) | st.integers(0, 40).map(lambda n: "0" * n + "2")


@settings(max_examples=400, deadline=None)
@given(text=STATE_TEXT, kind=st.sampled_from(["host", "service"]))
def test_state_is_the_whole_number_then_range_checked(text, kind):
    """A state string is read whole ("0002" is 2, CRITICAL: never 0) and must be 0-3 (services) or 0-2 (hosts)."""
    rec = {"type": kind, "hostname": "web-1", "servicename": "HTTP", "state": text}
    stripped = text.strip()
    valid = stripped.isascii() and stripped.isdigit() and int(stripped) <= (2 if kind == "host" else 3)
    try:
        state = to_result(rec, 0, T0).state
    except InputError as e:
        assert not valid, (text, e.message)
        assert e.field == "checkresults[0].state"
    else:
        assert valid and state == int(stripped), (text, state)


def test_critical_with_leading_zeros_is_critical():
    records = records_from_json('{"checkresults": [{"checkresult": {"type": "service"}, "hostname": "web-1", '
                                '"servicename": "HTTP", "state": "0002", "output": "CRITICAL"}]}')
    assert to_result(records[0], 0, T0).state == 2


def test_unescape():
    assert unescape(r"a\nb") == "a\nb"
    assert unescape(r"a\\nb") == "a\\nb"
    assert unescape("a\\tb") == "a\\tb"


FIELDS = st.sampled_from(["token", "cmd", "json", "xml", "JSONDATA", "XMLDATA", "output_type"])
VALUES = st.sampled_from(["t", "submitcheck", "hello", CHECKS_JSON, CHECKS_XML, "TYPE_JSON", "<checkresults/>"]) | st.text(max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(FIELDS, VALUES, max_size=5))
def test_random_forms_never_500(nrdp_server, form):
    status, text = nrdp_server.post_form(form)
    assert status == 200, (status, text)
    if text.startswith("{"):
        body = json.loads(text)
        assert set(body) <= {"result", "response"} and len(body) == 1
    else:
        assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<re')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ctype=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "text/plain"]),
       body=st.binary(max_size=80) | st.sampled_from([b"--b\r\n", b"--b--\r\n", b"token=t&cmd=submitcheck&xml=<x"]))
def test_random_raw_bodies_never_500(nrdp_server, ctype, body):
    status, text = nrdp_server.post_form(body, {"Content-Type": ctype})
    assert status == 200, (status, text)


class NrdpServer(Server):
    """The Hypothesis server, posting forms to /nrdp/."""

    def post_form(self, form: dict[str, str] | bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        async def go() -> tuple[int, str]:
            resp = await self.client.post("/nrdp/", data=form, headers=headers)
            return resp.status, await resp.text()

        return self.runner.run(go())


@pytest.fixture(scope="module")
def nrdp_server(tmp_path_factory):
    s = NrdpServer(tmp_path_factory.mktemp("hyp-nrdp"))
    yield s
    s.close()


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=30) | st.lists(st.sampled_from([b"%", b"\\", b"x", b"4", b"1", b"g", b"N{", b"u", b"\xc3", b"+"]), max_size=12).map(b"".join))
def test_fast_unquote_agrees_with_urllib(raw):
    assert unquote(raw) == unquote_to_bytes(raw.replace(b"+", b" "))


NAMES = st.sampled_from(["token", "cmd", "xml", "XMLDATA", "json", "output_type", "other", "%74oken", "tok%65n", "x+ml"])
VALUE_TEXT = st.text(alphabet="ab=+%2C0é\n<';", max_size=30)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(NAMES, VALUE_TEXT), max_size=6), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_streamed_urlencoded_fields_agree_with_parse_qsl(pairs, cuts):
    """However the body is cut into chunks, the splitter keeps NRDP's fields exactly as parse_qsl reads them."""
    text = "&".join(f"{n}={v}" for n, v in pairs)
    raw = text.encode()
    seen: list[tuple[str, str]] = []
    splitter = UrlencodedSplitter(lambda name, value: seen.append((name, value)))
    edges = sorted({0, len(raw), *(c for c in cuts if c < len(raw))})
    for a, b in zip(edges, edges[1:]):
        splitter.feed(raw[a:b])
    expected = [(n, v) for n, v in parse_qsl(text, keep_blank_values=True, errors="replace", separator="&") if n in FORM_FIELDS]
    assert splitter.close() == dict(expected)
    assert seen == expected  # each field reported once, in order, as soon as it is complete
