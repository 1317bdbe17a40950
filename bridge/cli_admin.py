"""CLI for notices, and the helpers the override CLI shares: writes the daemon's SQLite file with the API's validation."""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bridge import admin_ops as ops
from bridge import database
from bridge.admin import notice_json
from bridge.admin_input import InputError, known_ids, parse_notice
from bridge.auth import TokenFileError, TokenSet, admin_token_set
from bridge.config import ConfigError
from bridge.config_load import load_config
from bridge.database import open_db, write_transaction
from bridge.notices import Notice, timeline_state
from bridge.settings import default_db_path
from bridge.storage import list_notices

log = logging.getLogger("bridge.cli")

DB_HELP = "SQLite file the daemon uses (default: $STATE_DIRECTORY or /var/lib/status-bridge, status-bridge.db)"
CONFIG_HELP = "TOML config file, to check component ids against"
TIME_HELP = "ISO-8601 (2026-12-01T10:00Z; no zone = UTC) or epoch seconds"


class CliError(Exception):
    """A problem reported as `error: FIELD: message` with an exit code."""

    def __init__(self, field: str, message: str, code: int = 2) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code


def load_tokens(read: Callable[[], TokenSet]) -> tuple[str, ...]:
    """The tokens read() finds; exit 2 naming the file when it is unreadable, a warning when others may read it."""
    try:
        found = read()
    except TokenFileError as e:
        print(f"status-bridge: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if found.too_open:
        print(f"warning: {found.path} is readable by group/others; chmod 600 it", file=sys.stderr)
    if (short := found.short_warning()) is not None:
        log.warning("%s", short)
    return found.tokens


def load_admin_tokens(path: Path | None) -> tuple[str, ...]:
    """Admin tokens from a file (one per line, # comments) or else $STATUS_BRIDGE_ADMIN_TOKENS (comma/space separated)."""
    return load_tokens(lambda: admin_token_set(path))


def open_cli_db(args: argparse.Namespace, must_exist: bool) -> Database:
    """Open the daemon's database (readers do not create one where none exists)."""
    path = Path(args.db) if args.db else default_db_path()
    if must_exist and not path.exists():
        raise CliError("db", f"{path} does not exist (give --db, or start the daemon once)", 1)
    try:
        return open_db(path)
    except (OSError, sqlite3.Error) as e:
        raise CliError("db", f"cannot open {path}: {e}", 1) from None


def known_cli_ids(args: argparse.Namespace, pick: Callable[[Any], frozenset[str]], needed: bool) -> frozenset[str]:
    """Known ids from --config; without one, naming components is an error."""
    if args.config is None:
        if needed:
            raise CliError("config", "--config is required to check component ids")
        return frozenset()
    try:
        return pick(load_config(args.config))
    except ConfigError as e:
        raise CliError("config", f"invalid configuration:\n{e}") from None


def option_body(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options that were given, as an API-style body (so the API's rules and messages apply)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def short_time(epoch: float | None) -> str:
    """A short UTC time for tables."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%MZ")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _print_notice(n: Notice, args: argparse.Namespace, now: float) -> None:
    """One notice as JSON (--json) or readable text with its updates."""
    if args.json:
        print(json.dumps({"notice": notice_json(n, now)}, indent=2, ensure_ascii=False))
        return
    print(f"notice {n.id}: {n.subject}")
    print(f"  type {n.type}, state {n.state}, timeline {timeline_state(n, now)}")
    if n.type == "planned":
        print(f"  scheduled {short_time(n.begins_at)} to {short_time(n.ends_at)}")
    print(f"  began {short_time(n.began_at)}, ended {short_time(n.ended_at)}")
    print(f"  components: {', '.join(n.components) or '(none)'}")
    for u in n.updates:
        print(f"  [{short_time(u.created_at)}] {u.state}: {u.content}")


def cmd_notice_create(args: argparse.Namespace) -> None:
    """status-bridge notice create: a new incident (unplanned) or maintenance (planned)."""
    known = known_cli_ids(args, known_ids, needed=bool(args.components))
    now = time.time()
    spec = parse_notice(option_body(args, ("type", "state", "subject", "content", "components", "begins_at", "ends_at")), known, now)
    _print_notice(ops.add_notice(open_cli_db(args, False), spec, now), args, now)


def cmd_notice_update(args: argparse.Namespace) -> None:
    """status-bridge notice update ID: change subject/schedule/components and/or add a progress update."""
    if args.clear_components:
        args.components = []
    patch_body = option_body(args, ("subject", "begins_at", "ends_at", "components"))
    update_body = option_body(args, ("state", "content"))
    if not patch_body and not update_body:
        raise CliError("update", "nothing to change: give --state/--content, --subject, --begins-at, --ends-at or --component")
    known = known_cli_ids(args, known_ids, needed=bool(args.components))
    db, now = open_cli_db(args, True), time.time()
    # Both changes in one transaction: a bad update text must not leave the patch half applied.
    with write_transaction(db):
        n = ops.patch_notice(db, args.id, patch_body, known, now).notice if patch_body else ops.read_notice(db, args.id)
        if update_body:
            n = ops.post_update(db, args.id, update_body, now)
    _print_notice(n, args, now)


def cmd_notice_list(args: argparse.Namespace) -> None:
    """status-bridge notice list: every notice, newest first."""
    now = time.time()
    notices = [n for n in list_notices(open_cli_db(args, True)) if args.type is None or n.type == args.type]
    if args.json:
        print(json.dumps({"notices": [notice_json(n, now) for n in notices]}, indent=2, ensure_ascii=False))
        return
    rows = [
        [
            str(n.id),
            n.type,
            n.state,
            timeline_state(n, now),
            short_time(n.begins_at if n.type == "planned" else n.began_at),
            short_time(n.ends_at if n.type == "planned" else n.ended_at),
            ",".join(n.components) or "-",
            n.subject if len(n.subject) <= 60 else n.subject[:57] + "...",
        ]
        for n in notices
    ]
    print(text_table(["ID", "TYPE", "STATE", "TIMELINE", "STARTS", "ENDS", "COMPONENTS", "SUBJECT"], rows))


def cmd_notice_show(args: argparse.Namespace) -> None:
    """status-bridge notice show ID: a notice with its components and every update."""
    _print_notice(ops.read_notice(open_cli_db(args, True), args.id), args, time.time())


def _run(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    """Run a command, printing `error: FIELD: message` (exit 2 for bad input, 1 for unknown ids/DB trouble)."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            func(args)
        except InputError as e:
            print(f"error: {e.field}: {e.message}", file=sys.stderr)
            return 2
        except ops.NotFound as e:
            print(f"error: id: {e}", file=sys.stderr)
            return 1
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.code
        except sqlite3.OperationalError as e:
            if not database.is_busy(e):
                raise
            # The daemon (or another CLI) kept the write lock past the busy timeout; the transaction rolled back.
            print(f"error: db: the database is locked by another writer (waited {database.BUSY_TIMEOUT:g} s); "
                  "nothing was written, retry", file=sys.stderr)
            return 1
        return 0

    return wrapper


def subcommand(sub: Any, name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
    """A subcommand with --db and --json."""
    p = sub.add_parser(name, help=help, description=func.__doc__)
    p.set_defaults(func=_run(func))
    p.add_argument("--db", type=Path, help=DB_HELP)
    p.add_argument("--json", action="store_true", help="print JSON (the admin API's shape) instead of text")
    return p


def numeric_id(value: str) -> int:
    """A positive integer id."""
    if not value.isdigit() or len(value) > 15:
        raise argparse.ArgumentTypeError(f"expected a numeric id, got {value!r}")
    return int(value)


def add_admin_commands(sub: Any) -> None:
    """Add `notice create|update|list|show` to the CLI."""
    notice = sub.add_parser(
        "notice",
        help="create, update and list incidents and maintenance",
        description="Incidents (unplanned) and maintenance (planned) shown on the page; written to the daemon's SQLite file.",
    )
    nsub = notice.add_subparsers(dest="notice_command", required=True, metavar="ACTION")

    create = subcommand(nsub, "create", cmd_notice_create, "create a notice")
    create.add_argument("--config", "-c", type=Path, help=CONFIG_HELP + " (required with --component)")
    create.add_argument("--type", help="unplanned (incident) or planned (maintenance)", required=True)
    create.add_argument("--subject", help="one-line summary (at most 200 characters)", required=True)
    create.add_argument("--state", help="initial state (default: investigating / scheduled)")
    create.add_argument("--content", help="text of the first update (default: a standard sentence)")
    create.add_argument("--component", dest="components", action="append", metavar="ID", help="affected component or group (repeatable)")
    create.add_argument("--begins-at", help=f"planned start (already past: the maintenance is underway from now): {TIME_HELP}")
    create.add_argument("--ends-at", help=f"planned end, not in the past: {TIME_HELP}")

    update = subcommand(nsub, "update", cmd_notice_update, "add a progress update and/or change a notice")
    update.add_argument("id", type=numeric_id, help="notice id")
    update.add_argument("--config", "-c", type=Path, help=CONFIG_HELP + " (required with --component)")
    update.add_argument("--state", help="new state (default: unchanged)")
    update.add_argument("--content", help="text of the progress update")
    update.add_argument("--subject", help="new one-line summary")
    links = update.add_mutually_exclusive_group()
    links.add_argument("--component", dest="components", action="append", metavar="ID", help="replace the components (repeatable)")
    links.add_argument("--clear-components", action="store_true", help="unlink every component")
    update.add_argument("--begins-at", help=f"new planned start: {TIME_HELP}")
    update.add_argument("--ends-at", help=f"new planned end: {TIME_HELP}")

    lst = subcommand(nsub, "list", cmd_notice_list, "list notices")
    lst.add_argument("--type", choices=["planned", "unplanned"], help="only this type")

    show = subcommand(nsub, "show", cmd_notice_show, "show one notice with its updates")
    show.add_argument("id", type=numeric_id, help="notice id")
