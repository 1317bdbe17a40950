"""Command line: run, demo, check-config and get (one request through the app)."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from bridge import __version__
from bridge.auth import PUSH_TOKENS_ENV, push_token_set
from bridge.cli_admin import add_admin_commands, load_admin_tokens, load_tokens
from bridge.cli_overrides import add_override_commands
from bridge.config import Config, ConfigError
from bridge.config_load import load_config, parse_config
from bridge.logs import setup_logging
from bridge.sdnotify import under_systemd
from bridge.settings import Settings, TokenFiles, default_db_path

log = logging.getLogger("bridge.cli")

LOG_LEVELS = ["debug", "info", "warning", "error"]
DB_HELP = "SQLite file for notices and overrides (default: $STATE_DIRECTORY or /var/lib/status-bridge, status-bridge.db)"


def _listen(value: str) -> tuple[str, int]:
    """Parse HOST:PORT or [V6]:PORT for --listen."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _load(path: Path) -> Config:
    """Load a config or exit 2 printing every problem."""
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"status-bridge: invalid configuration:\n{e}", file=sys.stderr)
        raise SystemExit(2) from None


def demo_config(directory: Path) -> Config:
    """The bundled demo config, reading a status.dat in directory."""
    text = resources.files("bridge.demo").joinpath("demo.toml").read_text(encoding="utf-8")
    config = parse_config(text, None)
    return dataclasses.replace(config, statusdat_path=directory / "status.dat")


def _serve(settings: Settings, listen: tuple[str, int] | None, config_path: Path | None, access: bool) -> int:
    """Serve until SIGTERM/SIGINT (exit 0); SIGHUP reloads config_path; systemd is notified when under it."""
    from bridge.app import make_app
    from bridge.daemon import Daemon

    config = settings.config
    public = listen or (config.listen_host, config.listen_port)
    # The unit runs as User=status-bridge; a root process started by hand usually means someone forgot.
    if os.geteuid() == 0 and not under_systemd():
        log.warning("running as root outside systemd: a flaw in the bridge would then hold the whole machine; "
                    "run it as an unprivileged user (the systemd unit uses User=status-bridge)")  # fmt: skip

    async def main() -> int:
        """Build the app inside the loop that serves it."""
        return await Daemon(make_app(settings), config_path).run(public, config.admin_listen, access)

    try:
        return asyncio.run(main())
    except ConfigError as e:
        # Raised at start-up by a source (e.g. an unreadable [icinga] password_file): a message, not a traceback.
        print(f"status-bridge: invalid configuration:\n{e}", file=sys.stderr)
        return 2


def load_push_tokens(path: Path | None, config: Config) -> tuple[str, ...]:
    """Push tokens from --push-token-file, else [passive] tokens_file, else $STATUS_BRIDGE_PUSH_TOKENS."""
    return load_tokens(lambda: push_token_set(path, config))


def cmd_run(args: argparse.Namespace) -> int:
    """status-bridge run: serve the page; SIGHUP re-reads the config and token files (on a problem the old ones stay), SIGTERM stops gracefully."""
    tokens = load_admin_tokens(args.admin_token_file)
    config = _load(args.config)
    push = load_push_tokens(args.push_token_file, config)
    if config.passive_enabled and not push:
        log.info("passive endpoints answer 403 until push tokens are configured (--push-token-file)")
    files = TokenFiles(args.admin_token_file, args.push_token_file)
    settings = Settings(config, db_path=args.db or default_db_path(), admin_tokens=tokens, push_tokens=push, token_files=files)
    return _serve(settings, args.listen, args.config, args.access_log)


def cmd_demo(args: argparse.Namespace) -> int:
    """status-bridge demo: the bundled demo config and a simulated Nagios rewriting status.dat, served until Ctrl-C."""
    directory = args.dir or Path(tempfile.mkdtemp(prefix="status-bridge-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    if args.dir is None:
        # A temp dir we made is ours to remove; a --dir the user named is left alone.
        atexit.register(shutil.rmtree, directory, True)
    settings = Settings(
        demo_config(directory),
        demo_dir=directory,
        demo_interval=args.interval,
        db_path=args.db or directory / "status-bridge.db",
    )
    host, port = args.listen or (settings.config.listen_host, settings.config.listen_port)
    print(f"status-bridge demo: simulated Nagios writes {directory / 'status.dat'} every {args.interval:g} s", file=sys.stderr)
    print(f"status-bridge demo: open http://{host}:{port}/api/services.json (Ctrl-C to stop)", file=sys.stderr)
    return _serve(settings, (host, port), None, args.access_log)


def cmd_check_config(args: argparse.Namespace) -> int:
    """status-bridge check-config: every problem with file, key path and reason; warnings for unmatched checks."""
    from bridge.config_report import check_config
    from bridge.statusdat import StatusDatError, parse

    statusdat_path = args.statusdat
    data = None
    if statusdat_path is None:
        try:
            statusdat_path = load_config(args.config).statusdat_path
        except ConfigError:
            statusdat_path = None
    if statusdat_path is not None:
        try:
            data = parse(Path(statusdat_path).read_bytes())
        except (OSError, StatusDatError) as e:
            print(f"warning: cannot check mappings against {statusdat_path}: {e}", file=sys.stderr)
    report = check_config(args.config, data, source=str(statusdat_path) if data is not None else None)
    for line in report.problems:
        print(f"error: {line}", file=sys.stderr)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if report.problems:
        return 1
    print(f"{args.config}: OK" + (f" ({len(report.warnings)} warnings)" if report.warnings else ""))
    return 0


async def _get(settings: Settings, path: str) -> tuple[int, dict[str, str], bytes]:
    """Start the app on an ephemeral loopback port, make one request, stop."""
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from bridge.app import make_app

    async with TestServer(make_app(settings), host="127.0.0.1") as server:
        async with ClientSession() as session:
            async with session.get(server.make_url(path)) as resp:
                return resp.status, dict(resp.headers), await resp.read()


def cmd_get(args: argparse.Namespace) -> int:
    """status-bridge get PATH: one request through the real app, body on stdout."""
    if not args.path.startswith("/"):
        print("status-bridge get: PATH must start with /", file=sys.stderr)
        return 2
    settings = Settings(_load(args.config), db_path=args.db or default_db_path())
    status, headers, body = asyncio.run(_get(settings, args.path))
    if args.include:
        print(f"HTTP {status}")
        for k, v in headers.items():
            print(f"{k}: {v}")
        print()
    sys.stdout.buffer.write(body + (b"" if body.endswith(b"\n") else b"\n"))
    return 0 if status < 400 else 1


def _serve_options(parser: argparse.ArgumentParser) -> None:
    """Options of the serving commands: logging (also accepted before the command)."""
    # SUPPRESS: without it the subcommand's default would override a --log-level given before the command.
    parser.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help="log verbosity (default info)")
    parser.add_argument("--access-log", action="store_true", help="log one line per HTTP request (off by default)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree; every command has --help text."""
    p = argparse.ArgumentParser(prog="status-bridge", description="An honest public status page driven by Nagios.")
    p.add_argument("--version", action="version", version=f"status-bridge {__version__}")
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="log verbosity (default info)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="serve the status page from a config file", description=cmd_run.__doc__)
    run.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    run.add_argument("--listen", type=_listen, help="HOST:PORT, overrides [http] listen")
    run.add_argument("--db", type=Path, help=DB_HELP)
    run.add_argument(
        "--admin-token-file",
        type=Path,
        metavar="PATH",
        help="admin API bearer tokens, one per line (default: $STATUS_BRIDGE_ADMIN_TOKENS, comma-separated; none = admin API off)",
    )
    run.add_argument(
        "--push-token-file",
        type=Path,
        metavar="PATH",
        help="tokens for /nrdp/ and /api/v1/check-results, one per line (default: [passive] tokens_file, "
        f"else ${PUSH_TOKENS_ENV}, comma-separated; none = those endpoints answer 403)",
    )
    _serve_options(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="serve a bundled demo with a simulated Nagios", description=cmd_demo.__doc__)
    demo.add_argument("--listen", type=_listen, help="HOST:PORT (default 127.0.0.1:8080)")
    demo.add_argument("--dir", type=Path, help="where the simulated status.dat lives (default: a new temp dir)")
    demo.add_argument("--interval", type=float, default=3.0, help="seconds between simulated status.dat writes")
    demo.add_argument("--db", type=Path, help="SQLite file (default: status-bridge.db in the demo dir)")
    _serve_options(demo)
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check-config", help="validate a config file", description=cmd_check_config.__doc__)
    check.add_argument("config", type=Path, help="TOML config file")
    check.add_argument("--statusdat", type=Path, help="status.dat to check mappings against (default: the config's)")
    check.set_defaults(func=cmd_check_config)

    get = sub.add_parser("get", help="make one request through the app and print the body", description=cmd_get.__doc__)
    get.add_argument("path", help="request path, e.g. /api/services.json")
    get.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    get.add_argument("--include", "-i", action="store_true", help="print the status line and headers too")
    get.add_argument("--db", type=Path, help=DB_HELP)
    get.set_defaults(func=cmd_get)
    add_admin_commands(sub)
    add_override_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the status-bridge console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return int(args.func(args))
