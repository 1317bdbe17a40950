"""POST /nrdp/: what NRDP clients (send_nrdp.sh, send_nrdp.py) send, answered in NRDP's shapes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from urllib.parse import parse_qsl, unquote_to_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from defusedxml import DTDForbidden
from hypothesis import strategies as st

import bridge.nrdp as nrdp_module
from bridge import __version__
from bridge.nrdp import unescape
from bridge.views_passive import PASSIVE, parse_urlencoded, unquote
from tests.test_passive import T0, Clock, Server, feed, make, publish

JSON_OK = {"result": {"status": 0, "message": "OK", "meta": {"output": "2 checks processed"}}}
XML_OK = (
    '<?xml version="1.0" encoding="utf-8"?>\n<result>\n    <status>0</status>\n    <message>OK</message>\n'
    "    <meta>\n        <output>2 checks processed.</output>\n    </meta>\n</result>\n"
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


async def nrdp(client, data, status=200, path="/nrdp/"):
    resp = await client.post(path, data=data)
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


async def test_xml_wins_over_json_and_output_type_overrides(client):
    other = json.dumps({"checkresults": [{"checkresult": {"type": "service"}, "hostname": "web-1", "servicename": "HTTP", "state": "0"}]})
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": other, "xml": CHECKS_XML, "output_type": "TYPE_JSON"})
    assert json.loads(text) == JSON_OK  # answered in JSON as asked, data from the xml field as NRDP does
    assert held(client)[("web-1", "HTTP")] == 2


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
    assert resp.status == 400
    assert "<message>BAD DATA</message>" in await resp.text()


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


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_real_curl_like_send_nrdp_sh(client):
    url = str(client.make_url("/nrdp/"))
    xml = "<?xml version='1.0'?>\n<checkresults>\n<checkresult type='host' checktype='1'><hostname>web-1</hostname><state>1</state><output>DOWN</output></checkresult>\n</checkresults>"
    proc = await asyncio.create_subprocess_exec(
        "curl", "-f", "--silent", "--insecure", "-d", f"token=t&cmd=submitcheck&xml={xml}", url + "/",
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert "<status>0</status>" in out.decode() and "1 checks processed." in out.decode()
    assert held(client) == {("web-1", None): 1}


@pytest.mark.parametrize(
    "data, status, message",
    [
        ({"token": "nope", "cmd": "submitcheck", "json": CHECKS_JSON}, 403, "BAD TOKEN"),
        ({"cmd": "submitcheck", "json": CHECKS_JSON}, 401, "NO TOKEN"),
        ({"token": " ", "cmd": "submitcheck", "json": CHECKS_JSON}, 401, "NO TOKEN"),
        ({"token": "t", "json": CHECKS_JSON}, 400, "NO COMMAND"),
        ({"token": "t", "cmd": "submitcmd", "json": "{}"}, 403, "COMMANDS DISABLED"),
        ({"token": "t", "cmd": "frobnicate", "json": "{}"}, 400, "NO REQUEST HANDLER"),
        ({"token": "t", "cmd": "submitcheck", "json": "", "output_type": "TYPE_JSON"}, 400, "NO DATA"),
        ({"token": "t", "cmd": "submitcheck", "json": "{not json"}, 400, "BAD JSON"),
        ({"token": "t", "cmd": "submitcheck", "json": '{"checkresults": 5}'}, 400, "BAD JSON"),
        ({"token": "t", "cmd": "submitcheck", "json": '{"checkresults": [{"hostname": "web-1", "state": "9"}]}'}, 422, "BAD DATA"),
    ],
)
async def test_json_errors(client, data, status, message):
    _, text = await nrdp(client, data, status)
    body = json.loads(text)
    assert body["result"]["status"] == -1 and body["result"]["message"] == message
    assert body["error"]["status"] == status and body["error"]["message"]
    assert held(client) == {}


async def test_bad_token_is_exactly_nrdps_answer(client):
    _, text = await nrdp(client, {"token": "nope", "cmd": "submitcheck", "json": CHECKS_JSON}, 403)
    body = json.loads(text)
    assert body["result"] == {"status": -1, "message": "BAD TOKEN"}
    assert body["error"] == {"status": 403, "message": "invalid token", "field": "token"}
    _, text = await nrdp(client, {"token": "nope", "cmd": "submitcheck", "XMLDATA": CHECKS_XML}, 403)
    assert text == BAD_TOKEN_XML  # send_nrdp.py parses this with minidom


async def test_no_tokens_configured(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, tokens=()))
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON}, 403)
    assert json.loads(text)["result"] == {"status": -1, "message": "NO TOKENS"}
    await nrdp(client, {"cmd": "hello"})  # hello never needs a token


async def test_disabled(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_enabled=False))
    for data in ({"cmd": "hello", "output_type": "TYPE_JSON"}, {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON}):
        _, text = await nrdp(client, data, 403)
        assert json.loads(text)["result"] == {"status": -1, "message": "NOT ENABLED"}
        assert json.loads(text)["error"]["message"] == "passive endpoints disabled"


async def test_body_limit(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_max_body=300))
    data = {"token": "t", "cmd": "submitcheck", "json": CHECKS_JSON + " " * 300}
    _, text = await nrdp(client, data, 413)  # the unread body cannot choose JSON: NRDP's default, XML
    assert "<message>REQUEST TOO LARGE</message>" in text
    _, text = await nrdp(client, data, 413, path="/nrdp/?output_type=TYPE_JSON")
    assert json.loads(text)["error"]["field"] == "body"
    form = aiohttp.FormData()
    form.add_field("token", "t")
    form.add_field("xml", CHECKS_XML.encode() + b" " * 300, filename="x.xml")
    await nrdp(client, form, 413)


@pytest.mark.parametrize(
    "xml, information",
    [
        ("<checkresults><checkresult>", "invalid XML"),
        ("not xml at all", "invalid XML"),
        ("<results/>", "root element must be &lt;checkresults&gt;"),
    ],
)
async def test_malformed_xml(client, xml, information):
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "xml": xml}, 400)
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
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "XMLDATA": xml}, 400)
    assert [type(e) for e in raised] == [DTDForbidden]
    assert "<message>BAD XML</message>" in text and "DTD" in text
    assert "root:" not in text and held(client) == {}


async def test_partial_batch_keeps_valid_results(client):
    doc = json.loads(CHECKS_JSON)
    doc["checkresults"].append({"checkresult": {"type": "service"}, "hostname": "web-1", "state": "1"})  # no servicename
    doc["checkresults"].append({"checkresult": {"type": "bogus"}, "hostname": "web-1", "state": "1"})
    _, text = await nrdp(client, {"token": "t", "cmd": "submitcheck", "json": json.dumps(doc)})
    body = json.loads(text)
    assert body["result"] == JSON_OK["result"]
    assert [e["field"] for e in body["errors"]] == ["checkresults[2].servicename", "checkresults[3].type"]
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
    assert status in (200, 400, 401, 403, 405, 422), (status, text)
    if text.startswith("{"):
        body = json.loads(text)
        assert "result" in body or "response" in body
        if status != 200:
            assert body["result"]["status"] == -1 and body["error"]["status"] == status
    else:
        assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<re')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ctype=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "text/plain"]),
       body=st.binary(max_size=80) | st.sampled_from([b"--b\r\n", b"--b--\r\n", b"token=t&cmd=submitcheck&xml=<x"]))
def test_random_raw_bodies_never_500(nrdp_server, ctype, body):
    status, text = nrdp_server.post_form(body, {"Content-Type": ctype})
    assert status in (200, 400, 401, 403, 405, 422), (status, text)


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


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="ab=&+%2C0é\n<'", max_size=40))
def test_urlencoded_parser_agrees_with_parse_qsl(text):
    assert parse_urlencoded(text.encode()) == dict(parse_qsl(text, keep_blank_values=True, errors="replace"))
