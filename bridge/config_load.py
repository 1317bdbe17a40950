"""The TOML config loader: parse and validate a file into a Config, naming file, key path and reason per problem."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

from bridge.config import (
    DEFAULT_STATES,
    METRICS_MODES,
    OUTPUT_MAX,
    RULES,
    STATE_KEYS,
    CheckPattern,
    Component,
    Config,
    ConfigError,
    Group,
    Network,
)
from bridge.configcheck import (
    Checker,
    describe,
    frame_source_problem,
    join,
    parse_listen,
    page_url_problem,
    syntax_problem,
    url_problem,
)
from bridge.model import Status

# Allowed keys per table; anything else is reported as a likely typo.
_SECTION_KEYS = {
    "page": ("name", "url", "frame_ancestors"),
    "nagios": ("status_file", "stale_after"),
    "http": ("listen", "cache_seconds", "admin_listen", "metrics", "rate_limit", "burst", "trusted_proxies",
             "idle_timeout", "max_connections", "max_connections_per_ip"),
    "passive": ("enabled", "tokens_file", "stale_after", "max_body", "max_checks", "max_output", "max_output_total",
                "forget_after"),
    "icinga": ("url", "user", "password_file", "ca_file", "stale_after"),
}
_GROUP_KEYS = ("id", "name", "description", "component")
_COMPONENT_KEYS = ("id", "name", "description", "rule", "quorum", "soft_states", "checks", "states")
_CHECK_KEYS = ("host", "service")
_STATUS_VALUES = tuple(s.value for s in Status)


def load_config(path: Path) -> Config:
    """Read and validate a TOML config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        # utf-8-sig: editors on Windows like to add a BOM, which tomllib rejects.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not valid UTF-8 at byte {exc.start}"]) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path | None = None) -> Config:
    """Validate TOML text (path is for messages and relative status_file); raise ConfigError listing every problem."""
    label = str(path) if path is not None else "<config>"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(label, exc)]) from exc
    ck = Checker(label)
    ck.keys(doc, "", (*_SECTION_KEYS, "group"))
    page, nagios, http, passive, icinga = (ck.section(doc, name, keys) for name, keys in _SECTION_KEYS.items())
    icinga_url = ck.string(icinga, "url", "icinga")
    if icinga_url and (reason := url_problem(icinga_url)):
        ck.problem("icinga.url", reason)
    page_url = ck.string(page, "url", "page")
    if page_url and (reason := page_url_problem(page_url)):
        ck.problem("page.url", reason)
    host, port = Config.listen_host, Config.listen_port
    listen = ck.string(http, "listen", "http", f"{host}:{port}")
    parsed = parse_listen(listen)
    if isinstance(parsed, str):
        ck.problem("http.listen", parsed)
    else:
        host, port = parsed
    admin_listen = _admin_listen(ck, http, parsed)

    config = Config(
        path=path,
        page_name=ck.string(page, "name", "page", Config.page_name, nonempty=True),
        page_url=page_url,
        frame_ancestors=_frame_ancestors(ck, page),
        statusdat_path=_status_file(ck, nagios, path),
        stale_after=ck.number(nagios, "stale_after", "nagios", Config.stale_after, 0),
        cache_seconds=ck.integer(http, "cache_seconds", "http", Config.cache_seconds, 0),
        listen_host=host,
        listen_port=port,
        admin_listen=admin_listen,
        metrics=_metrics(ck, http, admin_listen),
        rate_limit=ck.number(http, "rate_limit", "http", Config.rate_limit, 0, low_open=False),
        burst=ck.integer(http, "burst", "http", Config.burst, 1),
        trusted_proxies=_networks(ck, http, "trusted_proxies", "http", Config.trusted_proxies),
        idle_timeout=ck.number(http, "idle_timeout", "http", Config.idle_timeout, 0, 3600),
        max_connections=ck.integer(http, "max_connections", "http", Config.max_connections, 0),
        max_connections_per_ip=ck.integer(http, "max_connections_per_ip", "http", Config.max_connections_per_ip, 0),
        groups=_groups(ck, doc.get("group", [])),
        passive_enabled=ck.boolean(passive, "enabled", "passive", True),
        passive_tokens_file=_path(ck, passive, "tokens_file", "passive", path),
        passive_stale_after=ck.number(passive, "stale_after", "passive", Config.passive_stale_after, 0),
        passive_max_body=ck.integer(passive, "max_body", "passive", Config.passive_max_body, 1),
        passive_max_checks=ck.integer(passive, "max_checks", "passive", Config.passive_max_checks, 1),
        passive_max_output=_max_output(ck, passive),
        passive_max_output_total=ck.integer(passive, "max_output_total", "passive", Config.passive_max_output_total, 0),
        passive_forget_after=_forget_after(ck, passive),
        icinga_url=icinga_url,
        icinga_user=ck.string(icinga, "user", "icinga"),
        icinga_password_file=_path(ck, icinga, "password_file", "icinga", path),
        icinga_ca_file=_path(ck, icinga, "ca_file", "icinga", path),
        icinga_stale_after=ck.number(icinga, "stale_after", "icinga", Config.icinga_stale_after, 0),
    )
    if ck.problems:
        raise ConfigError(ck.problems)
    return config


def _frame_ancestors(ck: Checker, page: dict[str, Any]) -> tuple[str, ...]:
    """page.frame_ancestors: the sites that may show the page in a frame; none (the default) forbids every frame."""
    value = page.get("frame_ancestors", [])
    if not isinstance(value, list):
        example = "['https://intranet.example.org']"
        ck.problem("page.frame_ancestors", f"must be an array of sources such as {example} (got {describe(value)})")
        return ()
    for i, item in enumerate(value):
        if (reason := frame_source_problem(item)) is not None:
            ck.problem(join("page.frame_ancestors", i), reason)
    return tuple(value)


def _max_output(ck: Checker, passive: dict[str, Any]) -> int:
    """passive.max_output: UTF-8 bytes of output kept per result, 0 to 65536 (Nagios' 64 KiB)."""
    value = ck.integer(passive, "max_output", "passive", Config.passive_max_output, 0)
    if value > OUTPUT_MAX:
        ck.problem("passive.max_output", f"must be at most {OUTPUT_MAX} (64 KiB, what Nagios keeps; got {value})")
        return Config.passive_max_output
    return value


def _forget_after(ck: Checker, passive: dict[str, Any]) -> float:
    """passive.forget_after: seconds, longer than passive.stale_after (a check turns stale before it is forgotten)."""
    value = ck.number(passive, "forget_after", "passive", Config.passive_forget_after, 0)
    stale = passive.get("stale_after", Config.passive_stale_after)
    if "forget_after" in passive and isinstance(stale, (int, float)) and not isinstance(stale, bool) and value <= stale:
        ck.problem("passive.forget_after", f"must be greater than passive.stale_after ({stale:g}), so checks turn "
                                           f"stale before they are forgotten (got {value:g})")
    return value


def _admin_listen(ck: Checker, http: dict[str, Any], public: tuple[str, int] | str) -> tuple[str, int] | None:
    """http.admin_listen: a second HOST:PORT for the admin API, distinct from http.listen; None when unset."""
    text = ck.string(http, "admin_listen", "http").strip()
    if not text:
        return None
    parsed = parse_listen(text)
    if isinstance(parsed, str):
        ck.problem("http.admin_listen", parsed)
        return None
    if parsed == public:
        ck.problem("http.admin_listen", f"must differ from http.listen (both are {text!r})")
    return parsed


def _metrics(ck: Checker, http: dict[str, Any], admin_listen: tuple[str, int] | None) -> str:
    """http.metrics: where /metrics answers; "admin" only with an admin listener to answer on."""
    mode = ck.string(http, "metrics", "http", Config.metrics)
    if mode not in METRICS_MODES:
        ck.problem("http.metrics", f"must be one of {', '.join(map(repr, METRICS_MODES))} (got {mode!r})")
        return Config.metrics
    if mode == "admin" and admin_listen is None and not str(http.get("admin_listen", "")).strip():
        # Without a second listener "admin" would mean public: refuse rather than expose what was meant private.
        # (A bad admin_listen is reported on its own: no second problem for it here.)
        ck.problem("http.metrics", '"admin" needs http.admin_listen (the address /metrics is then served on)')
    return mode


def _networks(ck: Checker, tbl: dict[str, Any], key: str, section: str, default: tuple[Network, ...]) -> tuple[Network, ...]:
    """An array of IP addresses or CIDR networks (e.g. ["127.0.0.1", "10.0.0.0/8"])."""
    path, value = join(section, key), tbl.get(key, default)
    if not isinstance(value, (list, tuple)):
        ck.problem(path, f"must be an array of IP addresses or networks (got {describe(value)})")
        return default
    found = []
    for i, item in enumerate(value):
        try:
            found.append(item if key not in tbl else ipaddress.ip_network(item.strip()))
        except (AttributeError, ValueError) as exc:
            why = exc if isinstance(item, str) else f"must be a string such as '10.0.0.0/8' (got {describe(item)})"
            ck.problem(join(path, i), f"not an IP address or network: {why}")
    return tuple(found)


def _status_file(ck: Checker, nagios: dict[str, Any], path: Path | None) -> Path | None:
    """nagios.status_file, relative to the config file's directory so the daemon's cwd does not matter."""
    return _path(ck, nagios, "status_file", "nagios", path)


def _path(ck: Checker, table: dict[str, Any], key: str, section: str, path: Path | None) -> Path | None:
    """An optional file path; relative paths resolve against the config file's directory."""
    if key not in table:
        return None
    value = ck.string(table, key, section, nonempty=True)
    if not value.strip():
        return None
    found = Path(value)
    if path is not None and not found.is_absolute():
        found = Path(path).absolute().parent / found
    return found


def _groups(ck: Checker, raw: object) -> tuple[Group, ...]:
    """All [[group]] tables; ids are checked for uniqueness across the file."""
    # Groups and components share one id space: the Sorry API lists both as components.
    seen: dict[str, str] = {}
    groups = []
    for gi, tbl in ck.tables(raw, "group", "[[group]]"):
        gpath = join("group", gi)
        ck.keys(tbl, gpath, _GROUP_KEYS, required=("id", "name"))
        gid = ck.slug(tbl, "id", gpath)
        _unique(ck, seen, gid, join(gpath, "id"), "group")
        comps = []
        for ci, ctbl in ck.tables(tbl.get("component", []), join(gpath, "component"), "[[group.component]]"):
            cpath = join(join(gpath, "component"), ci)
            comp = _component(ck, ctbl, cpath, gid)
            _unique(ck, seen, comp.id, join(cpath, "id"), "component")
            comps.append(comp)
        groups.append(Group(
            id=gid,
            name=ck.string(tbl, "name", gpath, nonempty=True),
            description=ck.string(tbl, "description", gpath),
            components=tuple(comps),
        ))
    return tuple(groups)


def _unique(ck: Checker, seen: dict[str, str], ident: str, path: str, kind: str) -> None:
    """Report an id already used elsewhere, naming both places."""
    if not ident:
        return
    if ident in seen:
        ck.problem(path, f"duplicate {kind} id {ident!r} (also used at {seen[ident]})")
    else:
        seen[ident] = path


def _component(ck: Checker, tbl: dict[str, Any], path: str, group_id: str) -> Component:
    """One [[group.component]] table."""
    ck.keys(tbl, path, _COMPONENT_KEYS, required=("id", "name", "checks"))
    rule = ck.string(tbl, "rule", path, "worst")
    if rule not in RULES:
        ck.problem(join(path, "rule"), f"must be one of {', '.join(RULES)} (got {rule!r})")
    quorum = ck.number(tbl, "quorum", path, Component.quorum, 0, 100)
    if "quorum" in tbl and rule != "quorum" and rule in RULES:
        ck.problem(join(path, "quorum"), f"only used with rule = \"quorum\" (rule is {rule!r})")
    return Component(
        id=ck.slug(tbl, "id", path),
        name=ck.string(tbl, "name", path, nonempty=True),
        group_id=group_id,
        description=ck.string(tbl, "description", path),
        checks=_checks(ck, tbl, path),
        rule=rule,
        quorum=quorum,
        states=_states(ck, tbl, path),
        soft_states=ck.boolean(tbl, "soft_states", path, False),
    )


def _checks(ck: Checker, tbl: dict[str, Any], path: str) -> tuple[CheckPattern, ...]:
    """The checks = [{host=..., service=...}] list; at least one entry."""
    if "checks" not in tbl:
        return ()  # already reported as a missing required key
    cpath = join(path, "checks")
    entries = ck.tables(tbl["checks"], cpath, "checks = [{host = \"...\", service = \"...\"}]")
    if tbl["checks"] == []:
        ck.problem(cpath, "needs at least one {host = \"...\"} entry")
    patterns = []
    for i, entry in entries:
        epath = join(cpath, i)
        ck.keys(entry, epath, _CHECK_KEYS, required=("host",))
        host = ck.string(entry, "host", epath, nonempty=True)
        service = ck.string(entry, "service", epath, nonempty=True) if "service" in entry else None
        patterns.append(CheckPattern(host=host, service=service))
    return tuple(patterns)


def _states(ck: Checker, tbl: dict[str, Any], path: str) -> dict[str, Status]:
    """DEFAULT_STATES with the component's [states] overrides applied."""
    states = dict(DEFAULT_STATES)
    spath = join(path, "states")
    overrides = ck.table(tbl.get("states", {}), spath)
    ck.keys(overrides, spath, STATE_KEYS)
    for key in STATE_KEYS:
        value = ck.string(overrides, key, spath, states[key].value)
        if value in _STATUS_VALUES:
            states[key] = Status(value)
        else:
            ck.problem(join(spath, key), f"must be one of {', '.join(_STATUS_VALUES)} (got {value!r})")
    return states
