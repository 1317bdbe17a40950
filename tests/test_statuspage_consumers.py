"""Real Statuspage v2 consumers (statuspage-prometheus-exporter, statuscheck) read the bridge in every page state.

They run from .venv-consumers (made by `make test` from tests/consumers/requirements.txt) against a
real bridge on 127.0.0.1. Only "operational" may look healthy to them; a component with no data never
reads operational.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from bridge.app import make_app
from bridge.settings import Settings
from tests.conftest import REPO, require_real, web_config
from tests.page_states import SCENARIOS

pytestmark = pytest.mark.real
PYTHON = REPO / ".venv-consumers" / "bin" / "python"
DRIVER = REPO / "tests" / "consumers" / "read_statuspage.py"


async def consume(tool: str, base: str) -> dict[str, Any]:
    """What the consumer concluded about the page at base (a subprocess; the loop keeps serving)."""
    require_real("the Statuspage consumers venv (make test creates .venv-consumers)", PYTHON.exists())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                                      "https_proxy", "ALL_PROXY", "all_proxy"))}
    env["NO_PROXY"] = "127.0.0.1"
    proc = await asyncio.create_subprocess_exec(str(PYTHON), str(DRIVER), tool, base, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_consumers_see_the_page_state(aiohttp_client: Any, tmp_path: Any, name: str) -> None:
    scenario = SCENARIOS[name]
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    client = await aiohttp_client(app)
    await scenario.apply(app)
    base = str(client.make_url("")).rstrip("/")
    healthy = scenario.state == "operational"

    exported = await consume("exporter", base)
    assert exported["success"] is True
    assert exported["status"] == (1 if healthy else 0), exported  # the exporter's up/down gauge
    checked = await consume("statuscheck", base)
    assert checked["is_ok"] is healthy, checked
    assert checked["code"] == scenario.indicator

    if scenario.state == "unknown":
        # Whatever the components last said, the consumer is told the page's status is unknown.
        assert "unknown" in checked["description"].lower()
        assert exported["raw_status"] != "none"
    if name in ("no data yet", "all pending"):
        assert set(exported["components"].values()) == {0}  # nothing with no data is operational
        assert "Operational" not in checked["components"].values()
