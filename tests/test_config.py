"""Config loading and validation: good files load, bad ones name file, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

import bridge.demo
from bridge.config import DEFAULT_STATES, CheckPattern, Config, ConfigError
from bridge.config_load import load_config, parse_config
from bridge.config_report import CheckReport, check_config
from bridge.demo.simulator import demo_objects
from bridge.demo.statusdat_writer import render_statusdat
from bridge.model import CheckState, Status, StatusData
from bridge.statusdat import parse

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "status-bridge.example.toml"
DEMO = Path(bridge.demo.__file__).parent / "demo.toml"

GROUP = """
[[group]]
id = "web"
name = "Web"
"""

COMPONENT = GROUP + """
[[group.component]]
id = "site"
name = "Site"
checks = [{host = "web-*", service = "HTTP"}]
"""


def _state(host: str, service: str | None) -> CheckState:
    """An OK, hard, checked state for host/service."""
    return CheckState(host, service, 0, 1, 0, True, False, 0, False, 0, 0, "OK", "")


def _statusdat(objects: dict[str, list[str]]) -> StatusData:
    """StatusData holding the given hosts and their services."""
    return StatusData(
        created=0.0,
        version="4.4.6",
        hosts={h: _state(h, None) for h in objects},
        services={(h, s): _state(h, s) for h, svcs in objects.items() for s in svcs},
    )


def _write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    """Write text to a config file in tmp_path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    """The problems load_config reports for text; fails the test if it loads."""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_example_config_loads() -> None:
    """The shipped example is valid and uses Debian's status.dat path."""
    config = load_config(EXAMPLE)
    assert config.statusdat_path == Path("/var/lib/nagios4/status.dat")
    assert config.listen_host == "127.0.0.1" and config.listen_port == 8080
    comps = {c.id: c for c in config.components()}
    assert comps["vpn"].rule == "all"
    assert comps["hpc"].rule == "quorum" and comps["hpc"].quorum == 75.0
    assert comps["backups"].states["warning"] is Status.UP
    assert check_config(EXAMPLE) == CheckReport(problems=[], warnings=[])


def test_demo_config_loads_and_matches_simulator() -> None:
    """The demo config maps onto exactly the simulated objects: every pattern matches something."""
    config = load_config(DEMO)
    assert config.page_name == "Example University IT status"
    assert config.stale_after == 30
    assert [g.name for g in config.groups] == ["Web", "Accounts", "Email", "Data"]
    comps = {c.name: c for c in config.components()}
    assert comps["Main website"].rule == "quorum" and comps["Main website"].quorum == 50
    assert comps["VPN"].rule == "all"
    assert comps["Backups"].states["warning"] is Status.UP
    assert comps["Databases"].checks == (
        CheckPattern("db-*", "PostgreSQL"),
        CheckPattern("db-*", "Disk*"),
    )
    now = 1_800_000_000
    simulated = parse(render_statusdat(demo_objects(now), now))
    assert check_config(DEMO, simulated) == CheckReport(problems=[], warnings=[])


def test_defaults() -> None:
    """An empty file is a valid config with the documented defaults."""
    config = parse_config("")
    assert config == Config()
    assert (config.stale_after, config.cache_seconds) == (180.0, 60)


def test_component_fields(tmp_path: Path) -> None:
    """Component keys land in the dataclass, with group_id from the enclosing group."""
    config = load_config(_write(tmp_path, GROUP + """
description = "Websites"
[[group.component]]
id = "site"
name = "Site"
description = "www"
rule = "quorum"
quorum = 66.5
soft_states = true
checks = [{host = "web-*", service = "*"}, {host = "lb"}]
"""))
    (group,) = config.groups
    assert group.description == "Websites"
    (comp,) = group.components
    assert comp.group_id == "web"
    assert (comp.rule, comp.quorum, comp.soft_states, comp.description) == ("quorum", 66.5, True, "www")
    assert comp.checks == (CheckPattern("web-*", "*"), CheckPattern("lb", None))
    assert comp.states == DEFAULT_STATES


BAD = [
    pytest.param('[page]\nnmae = "x"\n', "site.toml: page.nmae: unknown key (did you mean 'name'?)", id="unknown-key"),
    pytest.param('colour = "red"\n', "site.toml: colour: unknown key", id="unknown-top-key"),
    pytest.param(COMPONENT + 'rule_ = "all"\n', "group[0].component[0].rule_: unknown key", id="unknown-nested-key"),
    pytest.param('[page]\nname = 5\n', "site.toml: page.name: must be a string (got integer 5)", id="wrong-type-str"),
    pytest.param('[http]\ncache_seconds = "60"\n', "http.cache_seconds: must be an integer (got string '60')",
                 id="wrong-type-int"),
    pytest.param('[http]\ncache_seconds = -1\n', "http.cache_seconds: must be at least 0 (got -1)", id="negative-cache"),
    pytest.param('[nagios]\nstale_after = 0\n', "nagios.stale_after: must be greater than 0 (got 0)", id="stale-zero"),
    pytest.param('[nagios]\nstale_after = true\n', "nagios.stale_after: must be a number (got boolean true)",
                 id="stale-bool"),
    pytest.param('[nagios]\nstale_after = inf\n', "nagios.stale_after: must be greater than 0 (got inf)",
                 id="stale-inf"),
    pytest.param('[nagios]\nstatus_file = ""\n', "nagios.status_file: must not be empty", id="empty-status-file"),
    pytest.param('page = "x"\n', "site.toml: page: must be a table (got string 'x')", id="section-not-table"),
    pytest.param('[group]\nid = "x"\n', "group: must be an array of tables ([[group]])", id="group-not-array"),
    pytest.param(COMPONENT + 'soft_states = "yes"\n',
                 "group[0].component[0].soft_states: must be a boolean (true or false) (got string 'yes')",
                 id="wrong-type-bool"),
    pytest.param(COMPONENT + 'rule = "wrost"\n',
                 "site.toml: group[0].component[0].rule: must be one of worst, all, quorum (got 'wrost')",
                 id="bad-rule"),
    pytest.param(COMPONENT + 'rule = "quorum"\nquorum = 150\n',
                 "group[0].component[0].quorum: must be greater than 0 and at most 100 (got 150)",
                 id="quorum-too-big"),
    pytest.param(COMPONENT + 'rule = "quorum"\nquorum = 0\n',
                 "group[0].component[0].quorum: must be greater than 0 and at most 100 (got 0)",
                 id="quorum-zero"),
    pytest.param(COMPONENT + 'quorum = 50\n',
                 "group[0].component[0].quorum: only used with rule = \"quorum\" (rule is 'worst')",
                 id="quorum-with-worst"),
    pytest.param(COMPONENT + '[group.component.states]\nwarning = "ok"\n',
                 "group[0].component[0].states.warning: must be one of up, partial, down, maintenance, nodata"
                 " (got 'ok')",
                 id="bad-state-value"),
    pytest.param(COMPONENT + '[group.component.states]\nwarnign = "up"\n',
                 "group[0].component[0].states.warnign: unknown key (did you mean 'warning'?)",
                 id="unknown-state-key"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nname = "A"\nchecks = [{service = "HTTP"}]\n',
                 "group[0].component[0].checks[0].host: required key is missing", id="missing-host"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nname = "A"\nchecks = [{host = "h", svc = "x"}]\n',
                 "group[0].component[0].checks[0].svc: unknown key (did you mean 'service'?)",
                 id="unknown-check-key"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nname = "A"\nchecks = ["web-1"]\n',
                 "group[0].component[0].checks[0]: must be a table (got string 'web-1')", id="check-not-table"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nname = "A"\nchecks = []\n',
                 "group[0].component[0].checks: needs at least one", id="empty-checks"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nname = "A"\n',
                 "group[0].component[0].checks: required key is missing", id="no-checks"),
    pytest.param('[[group]]\nname = "Web"\n', "site.toml: group[0].id: required key is missing", id="missing-group-id"),
    pytest.param(GROUP + '[[group.component]]\nid = "a"\nchecks = [{host = "h"}]\n',
                 "group[0].component[0].name: required key is missing", id="missing-component-name"),
    pytest.param(COMPONENT + GROUP.replace('"web"', '"mail"') + COMPONENT.replace(GROUP, ""),
                 "site.toml: group[1].component[0].id: duplicate component id 'site'"
                 " (also used at group[0].component[0].id)",
                 id="duplicate-component-id"),
    pytest.param(GROUP + GROUP, "group[1].id: duplicate group id 'web' (also used at group[0].id)",
                 id="duplicate-group-id"),
    pytest.param(GROUP + '[[group.component]]\nid = "web"\nname = "W"\nchecks = [{host = "h"}]\n',
                 "group[0].component[0].id: duplicate component id 'web' (also used at group[0].id)",
                 id="component-id-equals-group-id"),
    pytest.param('[http]\nlisten = "8080"\n', "http.listen: must be HOST:PORT", id="listen-no-port"),
    pytest.param('[http]\nlisten = "localhost:http"\n', "http.listen: port must be a number from 1 to 65535",
                 id="listen-bad-port"),
    pytest.param('[http]\nlisten = "0.0.0.0:70000"\n', "http.listen: port must be a number from 1 to 65535",
                 id="listen-port-range"),
    pytest.param('[http]\nlisten = "::1:8080"\n', "http.listen: IPv6 addresses need brackets", id="listen-bare-ipv6"),
    pytest.param('[http]\nlisten = "[nope]:8080"\n', "http.listen: 'nope' in brackets is not an IPv6 address",
                 id="listen-bad-ipv6"),
    pytest.param('[[group]]\nid = "Web Site"\nname = "Web"\n', "group[0].id: must match ^[a-z0-9][a-z0-9_-]*$",
                 id="bad-group-slug"),
    pytest.param(GROUP + '[[group.component]]\nid = "-site"\nname = "S"\nchecks = [{host = "h"}]\n',
                 "group[0].component[0].id: must match", id="bad-component-slug"),
    pytest.param('[page]\nurl = "status.example.edu"\n',
                 "page.url: must be an http:// or https:// URL, or empty (got 'status.example.edu')", id="bad-url"),
    pytest.param('[page]\nurl = "ftp://example.edu/"\n', "page.url: must be an http:// or https:// URL",
                 id="url-scheme"),
    pytest.param('[page]\nurl = "https://example.edu:99999/"\n', "page.url: not a valid URL", id="url-port"),
    pytest.param('[page]\nurl = "/status"\n', "page.url: must be an http:// or https:// URL, or empty (got '/status')",
                 id="url-relative"),
    pytest.param('[page]\nurl = "//example.edu/status"\n', "page.url: must be an http:// or https:// URL",
                 id="url-no-scheme"),
    pytest.param('[page]\nurl = "https://example.edu/?lang=en"\n', "page.url: must not have a query or fragment",
                 id="url-query"),
    pytest.param('[page]\nurl = "https://example.edu/status#top"\n', "page.url: must not have a query or fragment",
                 id="url-fragment"),
    pytest.param('[page]\nurl = "https://example.edu/?"\n', "page.url: must not have a query or fragment",
                 id="url-empty-query"),
    pytest.param('[page]\nurl = "https://ops:pw@example.edu/"\n', "page.url: must not hold a user name or password",
                 id="url-credentials"),
    pytest.param('[page]\nname = "x"\nurl = \n', "site.toml: line 3, column 7: invalid TOML: Invalid value",
                 id="toml-syntax"),
    pytest.param('[page]\nname = "a"\nname = "b"\n', "site.toml: line 3, column 11: invalid TOML: Cannot overwrite",
                 id="toml-duplicate-key"),
]


BAD_PASSIVE = [
    pytest.param('[passive]\nmax_checks = 0\n', "passive.max_checks: must be at least 1 (got 0)", id="max-checks-zero"),
    pytest.param('[passive]\nmax_checks = "lots"\n', "passive.max_checks: must be an integer (got string 'lots')",
                 id="max-checks-string"),
    pytest.param('[passive]\nmax_output = 70000\n', "passive.max_output: must be at most 65536 (64 KiB, what Nagios keeps;"
                 " got 70000)", id="max-output-over-64k"),
    pytest.param('[passive]\nmax_output = -1\n', "passive.max_output: must be at least 0 (got -1)", id="max-output-negative"),
    pytest.param('[passive]\nmax_output_total = 1.5\n', "passive.max_output_total: must be an integer (got float 1.5)",
                 id="max-output-total-float"),
    pytest.param('[passive]\nforget_after = 600\n', "passive.forget_after: must be greater than passive.stale_after (900),"
                 " so checks turn stale before they are forgotten (got 600)", id="forget-before-stale"),
    pytest.param('[passive]\nstale_after = 60\nforget_after = 60\n', "passive.forget_after: must be greater than"
                 " passive.stale_after (60)", id="forget-equals-stale"),
    pytest.param('[passive]\nforget_after = 0\n', "passive.forget_after: must be greater than 0 (got 0)", id="forget-zero"),
    pytest.param('[passive]\nmax_check = 5\n', "passive.max_check: unknown key (did you mean 'max_checks'?)",
                 id="max-checks-typo"),
]


@pytest.mark.parametrize(("text", "expected"), BAD + BAD_PASSIVE)
def test_bad_config(tmp_path: Path, text: str, expected: str) -> None:
    """Each bad config reports the expected problem line, and only problems about that mistake."""
    problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'site.toml'}: ")
    assert expected in problems[0]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    """Validation does not stop at the first mistake: three mistakes give three lines."""
    problems = _problems(tmp_path, """
[page]
titel = "x"
[http]
listen = "localhost"
""" + COMPONENT + 'rule = "wrost"\n')
    assert len(problems) == 3, problems
    assert [p.split(": ")[1] for p in problems] == ["page.titel", "http.listen", "group[0].component[0].rule"]


def test_valid_values_accepted(tmp_path: Path) -> None:
    """Edge values that are allowed: bracketed IPv6, empty URL, quorum 100, cache 0, float stale_after."""
    config = load_config(_write(tmp_path, """
[page]
url = ""
[http]
listen = "[::1]:9000"
cache_seconds = 0
[nagios]
stale_after = 2.5
""" + COMPONENT + 'rule = "quorum"\nquorum = 100\n'))
    assert (config.listen_host, config.listen_port) == ("::1", 9000)
    assert (config.page_url, config.cache_seconds, config.stale_after) == ("", 0, 2.5)
    assert config.components()[0].quorum == 100.0


def test_empty_group_allowed_but_warned(tmp_path: Path) -> None:
    """A group without components loads; check_config warns about it."""
    path = _write(tmp_path, GROUP)
    assert load_config(path).groups[0].components == ()
    report = check_config(path)
    assert report.problems == []
    assert report.warnings == [f"{path}: group[0] (id 'web'): has no components"]


def test_missing_file_names_file(tmp_path: Path) -> None:
    """A missing config file is a ConfigError naming the file."""
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read: No such file or directory"]


def test_directory_is_unreadable(tmp_path: Path) -> None:
    """A directory given as config file is reported, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    """Latin-1 bytes are a problem naming the byte offset."""
    path = tmp_path / "site.toml"
    path.write_bytes(b'[page]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"site.toml: not valid UTF-8 at byte 18"):
        load_config(path)


def test_bom_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte order mark (Windows editors) does not break loading."""
    path = tmp_path / "site.toml"
    path.write_bytes(b'\xef\xbb\xbf[page]\nname = "x"\n')
    assert load_config(path).page_name == "x"


def test_parse_config_without_path_labels_problems() -> None:
    """parse_config without a path still gives well-formed problem lines."""
    with pytest.raises(ConfigError) as info:
        parse_config('[page]\nname = ""\n')
    assert info.value.problems == ["<config>: page.name: must not be empty"]


def test_relative_status_file_resolves_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative status_file is relative to the config file, not to the daemon's cwd."""
    (tmp_path / "etc").mkdir()
    path = _write(tmp_path / "etc", '[nagios]\nstatus_file = "../var/status.dat"\n')
    monkeypatch.chdir(tmp_path.parent)
    assert load_config(path).statusdat_path == tmp_path / "etc" / "../var/status.dat"
    # A relative config path is made absolute first, so a later chdir cannot move the file.
    monkeypatch.chdir(tmp_path)
    assert load_config(Path("etc/site.toml")).statusdat_path == tmp_path / "etc" / "../var/status.dat"


def test_absolute_status_file_kept(tmp_path: Path) -> None:
    """An absolute status_file is used as written."""
    path = _write(tmp_path, '[nagios]\nstatus_file = "/var/lib/nagios4/status.dat"\n')
    assert load_config(path).statusdat_path == Path("/var/lib/nagios4/status.dat")


def test_states_merged_over_defaults(tmp_path: Path) -> None:
    """Only the keys set in [states] change; the rest keep DEFAULT_STATES."""
    config = load_config(_write(tmp_path, COMPONENT + """
[group.component.states]
warning = "up"
downtime = "down"
"""))
    states = config.components()[0].states
    assert states == {**DEFAULT_STATES, "warning": Status.UP, "downtime": Status.DOWN}
    assert DEFAULT_STATES["warning"] is Status.PARTIAL  # the shared defaults are not mutated


CHECKED = """
[[group]]
id = "g"
name = "G"
[[group.component]]
id = "web"
name = "Web"
checks = [{host = "web-*", service = "HTTP"}, {host = "web-*", service = "FTP"}, {host = "cache-*"}]
[[group.component]]
id = "vpn"
name = "VPN"
checks = [{host = "vpn-*", service = "OpenVPN"}]
[[group.component]]
id = "hosts"
name = "Hosts"
checks = [{host = "web-1"}]
"""


def test_check_config_warnings(tmp_path: Path) -> None:
    """Unmatched components get one warning; unmatched patterns of matched components get one each."""
    path = _write(tmp_path, CHECKED)
    report = check_config(path, _statusdat({"web-1": ["HTTP"], "web-2": ["HTTP"]}), source="status.dat")
    assert report.problems == []
    assert report.warnings == [
        f"{path}: group[0].component[0].checks[1]: matches nothing in status.dat"
        " (hosts match 'web-*' but none has a service matching 'FTP')",
        f"{path}: group[0].component[0].checks[2]: matches nothing in status.dat (no host matches 'cache-*')",
        f"{path}: group[0].component[1] (id 'vpn'): matches no host/service in status.dat",
    ]


def test_check_config_names_configured_status_file(tmp_path: Path) -> None:
    """Without an explicit source, warnings name the configured status_file."""
    path = _write(tmp_path, '[nagios]\nstatus_file = "/srv/status.dat"\n' + COMPONENT)
    report = check_config(path, _statusdat({}))
    assert report.warnings == [f"{path}: group[0].component[0] (id 'site'): matches no host/service in /srv/status.dat"]


def test_check_config_no_warnings_when_all_match(tmp_path: Path) -> None:
    """Everything matched: no warnings."""
    path = _write(tmp_path, CHECKED)
    data = _statusdat({"web-1": ["HTTP", "FTP"], "cache-1": [], "vpn-1": ["OpenVPN"]})
    assert check_config(path, data) == CheckReport(problems=[], warnings=[])


def test_check_config_reports_problems(tmp_path: Path) -> None:
    """A config that does not load gives its problems and no warnings, even with status data."""
    path = _write(tmp_path, COMPONENT + 'rule = "wrost"\n')
    report = check_config(path, _statusdat({}))
    assert report.warnings == []
    assert report.problems == [f"{path}: group[0].component[0].rule: must be one of worst, all, quorum (got 'wrost')"]


BAD_HTTP = [
    pytest.param('[http]\nrate_limit = -1\n', "http.rate_limit: must be at least 0 (got -1)", id="rate-negative"),
    pytest.param('[http]\nrate_limit = "10"\n', "http.rate_limit: must be a number (got string '10')", id="rate-str"),
    pytest.param('[http]\nburst = 0\n', "http.burst: must be at least 1 (got 0)", id="burst-zero"),
    pytest.param('[http]\nburst = 2.5\n', "http.burst: must be an integer (got float 2.5)", id="burst-float"),
    pytest.param('[http]\ntrusted_proxies = "10.0.0.0/8"\n',
                 "http.trusted_proxies: must be an array of IP addresses or networks (got string '10.0.0.0/8')",
                 id="proxies-not-array"),
    pytest.param('[http]\ntrusted_proxies = ["127.0.0.1", "10.0.0.1/8"]\n',
                 "http.trusted_proxies[1]: not an IP address or network: 10.0.0.1/8 has host bits set",
                 id="proxies-host-bits"),
    pytest.param('[http]\ntrusted_proxies = ["proxy.example.org"]\n',
                 "http.trusted_proxies[0]: not an IP address or network", id="proxies-hostname"),
    pytest.param('[http]\ntrusted_proxies = [10]\n',
                 "http.trusted_proxies[0]: not an IP address or network: must be a string such as '10.0.0.0/8'"
                 " (got integer 10)", id="proxies-int"),
    pytest.param('[http]\nadmin_listen = "8081"\n', "http.admin_listen: must be HOST:PORT", id="admin-no-port"),
    pytest.param('[http]\nlisten = "127.0.0.1:8080"\nadmin_listen = "127.0.0.1:8080"\n',
                 "http.admin_listen: must differ from http.listen", id="admin-same-as-listen"),
    pytest.param('[http]\nrate_limt = 5\n', "http.rate_limt: unknown key (did you mean 'rate_limit'?)",
                 id="rate-typo"),
    pytest.param('[http]\nmetrics = "private"\n',
                 "http.metrics: must be one of 'public', 'admin', 'off' (got 'private')", id="metrics-value"),
    pytest.param('[http]\nmetrics = "admin"\n', 'http.metrics: "admin" needs http.admin_listen', id="metrics-no-admin"),
    pytest.param('[http]\nidle_timeout = 0\n', "http.idle_timeout: must be greater than 0 and at most 3600 (got 0)",
                 id="idle-zero"),
    pytest.param('[http]\nidle_timeout = "10"\n', "http.idle_timeout: must be a number (got string '10')", id="idle-str"),
    pytest.param('[http]\nmax_connections = -1\n', "http.max_connections: must be at least 0 (got -1)", id="max-neg"),
    pytest.param('[http]\nmax_connections_per_ip = 1.5\n',
                 "http.max_connections_per_ip: must be an integer (got float 1.5)", id="per-ip-float"),
    pytest.param('[http]\nmax_connection_per_ip = 8\n',
                 "http.max_connection_per_ip: unknown key (did you mean 'max_connections_per_ip'?)", id="per-ip-typo"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_HTTP)
def test_bad_http_limits(tmp_path: Path, text: str, expected: str) -> None:
    """Rate limiting, proxies and the admin listener are validated like every other key."""
    problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_http_limits_and_admin_listen(tmp_path: Path) -> None:
    """Defaults: 10/s, burst 20, loopback proxies trusted, admin API on the public listener."""
    import ipaddress

    default = parse_config("")
    assert (default.rate_limit, default.burst, default.admin_listen, default.metrics) == (10.0, 20, None, "public")
    # 0 = the fd limit minus a reserve, at most 10,000 (bridge/fdlimit.py)
    assert (default.idle_timeout, default.max_connections, default.max_connections_per_ip) == (10.0, 0, 64)
    assert [str(n) for n in default.trusted_proxies] == ["127.0.0.0/8", "::1/128"]
    config = load_config(_write(tmp_path, """
[http]
listen = "0.0.0.0:8080"
admin_listen = "[::1]:8081"
metrics = "admin"
rate_limit = 2.5
burst = 5
trusted_proxies = ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]
"""))
    assert (config.admin_listen, config.metrics) == (("::1", 8081), "admin")
    assert (config.rate_limit, config.burst) == (2.5, 5)
    assert config.trusted_proxies == tuple(map(ipaddress.ip_network, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]))
    assert parse_config("[http]\ntrusted_proxies = []\nrate_limit = 0\n").trusted_proxies == ()


def test_example_config_documents_http_limits() -> None:
    """The example sets the rate-limit keys (to their defaults) and shows admin_listen."""
    config = load_config(EXAMPLE)
    assert (config.rate_limit, config.burst) == (10.0, 20)
    assert [str(n) for n in config.trusted_proxies] == ["127.0.0.1/32", "::1/128"]
    assert '# admin_listen = "127.0.0.1:8081"' in EXAMPLE.read_text()
    assert config.metrics == "public" and 'metrics = "public"' in EXAMPLE.read_text()
    assert (config.idle_timeout, config.max_connections, config.max_connections_per_ip) == (10.0, 0, 64)



def test_passive_limits_defaults_and_values(tmp_path: Path) -> None:
    """Defaults: 200,000 checks, 64 KiB per output, 64 MiB of outputs, forgotten after 7 days."""
    default = parse_config("")
    assert (default.passive_max_checks, default.passive_max_output, default.passive_max_output_total,
            default.passive_forget_after) == (200_000, 65_536, 64 << 20, 604_800.0)
    config = load_config(_write(tmp_path, "[passive]\nstale_after = 60\nmax_checks = 5000\nmax_output = 0\n"
                                          "max_output_total = 1048576\nforget_after = 3600\n"))
    assert (config.passive_max_checks, config.passive_max_output, config.passive_max_output_total,
            config.passive_forget_after) == (5_000, 0, 1 << 20, 3600.0)


def test_example_config_documents_passive_limits() -> None:
    """The example sets every [passive] limit to its default."""
    config = load_config(EXAMPLE)
    assert (config.passive_max_checks, config.passive_max_output, config.passive_max_output_total,
            config.passive_forget_after) == (200_000, 65_536, 64 << 20, 604_800.0)
    text = EXAMPLE.read_text()
    assert all(f"\n{key} = " in text for key in ("max_checks", "max_output", "max_output_total", "forget_after"))
