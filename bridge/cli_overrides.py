"""CLI for overrides (`override add|update|list|remove`): --message is published, --reason stays with administrators."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bridge import admin_ops as ops
from bridge.admin import override_json
from bridge.cli_admin import (
    CONFIG_HELP,
    TIME_HELP,
    CliError,
    known_cli_ids,
    numeric_id,
    open_cli_db,
    option_body,
    short_time,
    subcommand,
    text_table,
)
from bridge.notices import Override
from bridge.override_input import component_ids, parse_override
from bridge.storage import list_overrides

MESSAGE_HELP = "PUBLIC text shown on the page and in the Oxford feed (without one the page says only 'set by an operator')"
REASON_HELP = "PRIVATE note for administrators (admin API, `override list`); never published"
STATUS_HELP = "up, partial, down or maintenance"
CELL_MAX = 40


def _print_override(o: Override, args: argparse.Namespace, now: float) -> None:
    """One override as JSON (--json) or three lines that say which text is public."""
    if args.json:
        print(json.dumps({"override": override_json(o, now)}, indent=2, ensure_ascii=False))
        return
    print(f"override {o.id}: {o.component_id} {o.status.value} from {short_time(o.starts_at)} until {short_time(o.ends_at)}")
    print(f"  message (public): {o.message if o.message is not None else '(none: the page says set by an operator)'}")
    print(f"  reason (private): {o.reason if o.reason is not None else '(none)'}")


def _cell(text: str | None) -> str:
    """A text column of the listing: "-" for none, long text cut short (--json has it whole)."""
    if text is None:
        return "-"
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 3] + "..."


def cmd_override_add(args: argparse.Namespace) -> None:
    """status-bridge override add: replace a component's shown status for a window (--message public, --reason private)."""
    components = known_cli_ids(args, component_ids, needed=True)
    now = time.time()
    body = option_body(args, ("component", "status", "starts_at", "ends_at", "message", "reason"))
    spec = parse_override(body, components, now)
    _print_override(ops.add_override(open_cli_db(args, False), spec, now), args, now)


def cmd_override_update(args: argparse.Namespace) -> None:
    """status-bridge override update ID: change the status, the window, the public message or the private reason."""
    body = option_body(args, ("status", "starts_at", "ends_at", "message", "reason"))
    # The clearing flags are the CLI's spelling of the API's null.
    for key, flag in (("ends_at", "until_removed"), ("message", "clear_message"), ("reason", "clear_reason")):
        if getattr(args, flag):
            body[key] = None
    if not body:
        raise CliError("update", "nothing to change: give --status, --starts-at, --ends-at, --message or --reason")
    now = time.time()
    _print_override(ops.patch_override(open_cli_db(args, True), args.id, body, now)[0], args, now)


def cmd_override_list(args: argparse.Namespace) -> None:
    """status-bridge override list: every stored override (past, current, future), its public message and private reason."""
    now = time.time()
    overrides = list_overrides(open_cli_db(args, True))
    if args.json:
        print(json.dumps({"overrides": [override_json(o, now) for o in overrides]}, indent=2, ensure_ascii=False))
        return

    def when(o: Override) -> str:
        return "active" if o.active(now) else ("future" if o.starts_at > now else "ended")

    rows = [
        [str(o.id), o.component_id, o.status.value, when(o), short_time(o.starts_at), short_time(o.ends_at)]
        + [_cell(o.message), o.reason if o.reason is not None else "-"]
        for o in overrides
    ]
    print(text_table(["ID", "COMPONENT", "STATUS", "NOW", "STARTS", "ENDS", "MESSAGE (PUBLIC)", "REASON (PRIVATE)"], rows))


def cmd_override_remove(args: argparse.Namespace) -> None:
    """status-bridge override remove ID: delete an override (the shown status reverts to the monitored one)."""
    ops.remove_override(open_cli_db(args, True), args.id)
    print(json.dumps({"removed": args.id}) if args.json else f"removed override {args.id}")


def add_override_commands(sub: Any) -> None:
    """Add `override add|update|list|remove` to the CLI."""
    override = sub.add_parser(
        "override",
        help="replace a component's shown status for a time window",
        description="Scheduled overrides of a component's shown status (the monitored status stays visible beside it). "
        "--message is public (the page and the Oxford feed show it); --reason is private (admin API and this CLI only).",
    )
    osub = override.add_subparsers(dest="override_command", required=True, metavar="ACTION")

    add = subcommand(osub, "add", cmd_override_add, "add an override")
    add.add_argument("--config", "-c", type=Path, help=CONFIG_HELP + " (required)")
    add.add_argument("--component", help="component id", required=True)
    add.add_argument("--status", help=STATUS_HELP, required=True)
    add.add_argument("--starts-at", help=f"start (default: now): {TIME_HELP}")
    add.add_argument("--ends-at", help=f"end (default: until removed): {TIME_HELP}")
    add.add_argument("--message", help=MESSAGE_HELP)
    add.add_argument("--reason", help=REASON_HELP)

    update = subcommand(osub, "update", cmd_override_update, "change an override")
    update.add_argument("id", type=numeric_id, help="override id")
    update.add_argument("--status", help=STATUS_HELP)
    update.add_argument("--starts-at", help=f"new start: {TIME_HELP}")
    ends = update.add_mutually_exclusive_group()
    ends.add_argument("--ends-at", help=f"new end: {TIME_HELP}")
    ends.add_argument("--until-removed", action="store_true", help="no end: the override holds until removed")
    for name, text in (("message", MESSAGE_HELP), ("reason", REASON_HELP)):
        texts = update.add_mutually_exclusive_group()
        texts.add_argument(f"--{name}", help=text)
        texts.add_argument(f"--clear-{name}", action="store_true", help=f"remove the {name}")

    subcommand(osub, "list", cmd_override_list, "list overrides with their public message and private reason")
    remove = subcommand(osub, "remove", cmd_override_remove, "remove an override")
    remove.add_argument("id", type=numeric_id, help="override id")
