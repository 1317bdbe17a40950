"""Runtime settings handed to make_app: the validated config plus process-level options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Config


@dataclass(frozen=True)
class TokenFiles:
    """The token files `run` was given, so a SIGHUP reload reads them again (None: [passive] tokens_file or env)."""

    admin: Path | None = None  # --admin-token-file, else $STATUS_BRIDGE_ADMIN_TOKENS
    push: Path | None = None  # --push-token-file, else [passive] tokens_file, else $STATUS_BRIDGE_PUSH_TOKENS


# Not frozen: a SIGHUP reload swaps admin_tokens/push_tokens in place, and handlers read them per request.
@dataclass
class Settings:
    """Everything make_app needs; built by the CLI or by tests."""

    config: Config
    watch: bool = True  # start the status.dat tailer (tests may feed data directly instead)
    demo_dir: Path | None = None  # when set, a simulator writes a live demo status.dat here
    demo_interval: float = 3.0
    db_path: Path | None = None  # SQLite file for notices and overrides; None = in-memory (tests)
    admin_tokens: tuple[str, ...] = ()  # bearer tokens accepted by the admin API
    push_tokens: tuple[str, ...] = ()  # tokens accepted by the passive endpoints (none = they answer 403)
    recent_days: float = 7.0  # a notice ended within this many days is past_recent
    token_files: TokenFiles | None = None  # where reloads re-read the tokens; None = given directly, kept as is


def default_db_path() -> Path:
    """The SQLite file under the state directory (systemd's $STATE_DIRECTORY, else /var/lib/status-bridge)."""
    state = os.environ.get("STATE_DIRECTORY", "/var/lib/status-bridge").split(":")[0]
    return Path(state) / "status-bridge.db"
