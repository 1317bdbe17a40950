"""Runtime settings handed to make_app: the validated config plus process-level options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.config import Config


@dataclass(frozen=True)
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


def default_db_path() -> Path:
    """The SQLite file under the state directory (systemd's $STATE_DIRECTORY, else /var/lib/status-bridge)."""
    state = os.environ.get("STATE_DIRECTORY", "/var/lib/status-bridge").split(":")[0]
    return Path(state) / "status-bridge.db"
