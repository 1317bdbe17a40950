"""`status-bridge check`: load a config and warn about components and patterns that match no monitored check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import CheckPattern, Config, ConfigError
from bridge.config_load import load_config
from bridge.matching import match_patterns
from bridge.model import StatusData


@dataclass
class CheckReport:
    """Result of `status-bridge check`: problems make the config unusable, warnings do not."""

    problems: list[str]
    warnings: list[str]


def check_config(path: Path, statusdat: StatusData | None = None, source: str | None = None) -> CheckReport:
    """Load path and, given parsed status data, warn about components and patterns that match nothing.

    source names the status data in warnings (default: the config's status_file).
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        return CheckReport(problems=list(exc.problems), warnings=[])
    label = str(path)
    warnings = []
    for gi, group in enumerate(config.groups):
        if not group.components:
            warnings.append(f"{label}: group[{gi}] (id {group.id!r}): has no components")
    if statusdat is not None:
        where = source or str(config.statusdat_path or "the status data")
        warnings += _match_warnings(config, statusdat, label, where)
    return CheckReport(problems=[], warnings=warnings)


def _match_warnings(config: Config, data: StatusData, label: str, where: str) -> list[str]:
    """Warnings for components matching nothing, else for their individual patterns that match nothing."""
    out = []
    for gi, group in enumerate(config.groups):
        for ci, comp in enumerate(group.components):
            cpath = f"group[{gi}].component[{ci}]"
            if not match_patterns(comp.checks, data):
                # One line per component: its patterns all match nothing, listing each would be noise.
                out.append(f"{label}: {cpath} (id {comp.id!r}): matches no host/service in {where}")
                continue
            for pi, pat in enumerate(comp.checks):
                if match_patterns([pat], data):
                    continue
                if pat.service is not None and match_patterns([CheckPattern(pat.host)], data):
                    why = f"hosts match {pat.host!r} but none has a service matching {pat.service!r}"
                else:
                    why = f"no host matches {pat.host!r}"
                out.append(f"{label}: {cpath}.checks[{pi}]: matches nothing in {where} ({why})")
    return out
