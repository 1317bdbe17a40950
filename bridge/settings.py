"""Runtime settings handed to make_app: the validated config plus process-level options."""

from __future__ import annotations

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
