"""NRDP 2.0.6's own clients against the real daemon: their exact requests, and what each makes of the answer.

The clients are not part of this repository, so each is replayed: send_nrdp.sh's curl command line and the sed
it runs on the reply (in bash, for real), send_nrdp.py's GET and its minidom parsing, send_nrdp.php's POST.
What they send and read comes from NRDP 2.0.6 (clients/send_nrdp.sh, send_nrdp.py, send_nrdp.php).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.dom.minidom import Node, parseString

import pytest

from tests.bridgeproc import BridgeProcess, poll, site_toml
from tests.conftest import free_port, require_binary

TOKEN = "nrdp-client-token-5fQ2"
TIMEOUT = 30  # bound on any client run

# send_nrdp.sh's send_data(), replayed: the same curl options, the same parsing of the reply, the same messages
# and exit codes. $1 url, $2 token, $3 the XML, $4 a file to send with --data-urlencode instead (-f mode).
SEND_NRDP_SH = r"""
url=$1; token=$2; xml=$3; file=$4
pdata="token=$token&cmd=submitcheck"
if [ -n "$file" ]; then
    rslt=`curl -f --silent --insecure -d "$pdata" --data-urlencode "xml@$file" "$url/"`
else
    pdata="$pdata&xml=$xml"
    rslt=`curl -f --silent --insecure -d "$pdata" "$url/"`
fi
ret=$?
status=`echo $rslt | sed -n 's|.*<status>\(.*\)</status>.*|\1|p'`
message=`echo $rslt | sed -n 's|.*<message>\(.*\)</message>.*|\1|p'`
if [ $ret != 0 ]; then echo "ERROR: could not connect to NRDP server at $url"; exit 1; fi
if [ "$status" != "0" ]; then echo "ERROR: The NRDP Server said $message"; exit 2; fi
echo "Sent 1 checks to $url"
"""


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """The real daemon with a push token and no other source: only pushed results."""
    directory = tmp_path_factory.mktemp("nrdp-clients")
    port = free_port()
    config = directory / "site.toml"
    config.write_text(site_toml(port, "NRDP clients"))
    token_file = directory / "push.token"
    token_file.write_text(f"{TOKEN}\n")
    token_file.chmod(0o600)
    with BridgeProcess(config, port, ("--push-token-file", str(token_file))) as proc:
        yield proc


def sh_xml(host: str, service: str, state: str, output: str) -> str:
    """The XML send_nrdp.sh builds for -H -s -S -o: & < > in the output percent-encoded, the rest raw."""
    output = output.replace("&", "%26").replace("<", "%3C").replace(">", "%3E")
    check = (f"<checkresult type='service' checktype='1'>\n        <servicename>{service}</servicename>"
             f"<hostname>{host}</hostname>\n    <state>{state}</state>\n    <output><![CDATA[{output}]]></output>\n"
             "    </checkresult>")  # fmt: skip
    return f"<?xml version='1.0'?>\n    <checkresults>\n    {check}\n    </checkresults>"


def send_nrdp_sh(url: str, token: str, xml: str, file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the replayed send_data() in bash."""
    cmd = [require_binary("bash"), "-c", SEND_NRDP_SH, "send_nrdp.sh", url, token, xml, str(file or "")]
    require_binary("curl")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def website(bridge: BridgeProcess, status: str) -> None:
    """Wait until the feed shows component website with status_name status."""
    def shows(body: bytes) -> bool:
        groups = json.loads(body)["groups"]
        return any(s["id"] == "website" and s["status_name"] == status for g in groups for s in g["services"])

    poll(bridge.base + "/api/services.json", shows, timeout=10)


def test_send_nrdp_sh_single_check(bridge: BridgeProcess) -> None:
    """-H -s -S -o, with the url as NRDP documents it (…/nrdp/, so the request goes to /nrdp//): accepted and shown."""
    proc = send_nrdp_sh(bridge.base + "/nrdp/", TOKEN, sh_xml("web-1", "HTTP", "2", "CRITICAL - down & out <5s>"))
    assert (proc.returncode, proc.stdout) == (0, f"Sent 1 checks to {bridge.base}/nrdp/\n"), proc.stderr
    website(bridge, "Down")


def test_send_nrdp_sh_file_mode(bridge: BridgeProcess, tmp_path: Path) -> None:
    """-f FILE: curl --data-urlencode "xml@FILE"; a state written 0001 is WARNING, not OK."""
    file = tmp_path / "results.xml"
    file.write_text("<?xml version='1.0'?>\n<checkresults>\n  <checkresult type=\"service\" checktype=\"1\">\n"
                    "    <hostname>web-1</hostname>\n    <servicename>HTTP</servicename>\n    <state>0001</state>\n"
                    "    <output>WARNING - slow|time=5s;1;4;0</output>\n  </checkresult>\n</checkresults>\n")  # fmt: skip
    proc = send_nrdp_sh(bridge.base + "/nrdp", TOKEN, "", file)
    assert proc.returncode == 0, proc.stdout
    website(bridge, "Partial")


@pytest.mark.parametrize("token, said", [("wrong-token", "BAD TOKEN"), (" ", "NO TOKEN")])
def test_send_nrdp_sh_prints_nrdps_refusal(bridge: BridgeProcess, token: str, said: str) -> None:
    """HTTP 200 with NRDP's error body: curl -f succeeds and the script prints the server's own message."""
    proc = send_nrdp_sh(bridge.base + "/nrdp/", token, sh_xml("web-1", "HTTP", "0", "OK"))
    assert (proc.returncode, proc.stdout) == (2, f"ERROR: The NRDP Server said {said}\n")


def send_nrdp_py(url: str, token: str, xml: str) -> tuple[int, str]:
    """send_nrdp.py's post_data(), replayed: (its return value, what it printed)."""
    if not url.endswith("/"):
        url += "/"
    params = urllib.parse.urlencode({"token": token.strip(), "cmd": "submitcheck", "XMLDATA": xml})
    try:
        with urllib.request.urlopen(f"{url}?{params}", timeout=TIMEOUT) as f:
            result = parseString(f.read().decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - as the client does: any failure reads "cannot connect"
        if isinstance(e, urllib.error.HTTPError):
            e.close()
        return -3, f"ERROR - Cannot connect to url: {e}"

    def text(tag: str) -> str:
        return "".join(n.data for n in result.getElementsByTagName(tag)[0].childNodes if n.nodeType == Node.TEXT_NODE)

    if text("status") == "0":
        return 1, ""
    return -1, "ERROR - NRDP Returned: " + text("message")


PY_XML = ("<?xml version='1.0'?>\n<checkresults>\n<checkresult type='service' checktype='1'><hostname>web-1</hostname>"
          "<servicename>HTTP</servicename><state>{state}</state><output>{output}</output></checkresult></checkresults>")  # fmt: skip


def test_send_nrdp_py_file_mode_is_a_get(bridge: BridgeProcess) -> None:
    """send_nrdp.py -f sends GET /nrdp/?token=...&cmd=submitcheck&XMLDATA=...: accepted; a bad token is its message."""
    assert send_nrdp_py(bridge.base + "/nrdp", TOKEN, PY_XML.format(state="0", output="OK - fine")) == (1, "")
    website(bridge, "Up")
    assert send_nrdp_py(bridge.base + "/nrdp", "nope", PY_XML.format(state="2", output="x")) == (-1, "ERROR - NRDP Returned: BAD TOKEN")


def test_send_nrdp_php_posts_its_fields(bridge: BridgeProcess) -> None:
    """send_nrdp.php: curl with FAILONERROR posts "token=...&cmd=submitcheck&xml=<urlencoded>" to URL/; success is
    curl succeeding (it reads no reply), so a good push must not be an HTTP error and must be stored."""
    xml = ("<?xml version='1.0'?>\n<checkresults>\n\n    <checkresult type='service'  checktype='1'>\n"
           "        <hostname>web-1</hostname>\n        <servicename>HTTP</servicename>\n        <state>2</state>\n"
           "        <output>CRITICAL - from PHP &amp; co</output>\n    </checkresult>\n        \n</checkresults>")  # fmt: skip
    body = f"token={TOKEN}&cmd=submitcheck&xml={urllib.parse.quote_plus(xml)}"
    cmd = [require_binary("curl"), "--fail", "--silent", "--max-time", str(TIMEOUT), "-H", "Accept: text/*",
           "-A", "BinGet/1.00.A (http://www.bin-co.com/php/scripts/load/)", "--data", body, bridge.base + "/nrdp/"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0 and "<status>0</status>" in proc.stdout, proc
    website(bridge, "Down")
