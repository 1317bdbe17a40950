"""Run inside .venv-consumers: read a bridge's Statuspage v2 API with a real consumer, print what it concluded.

usage: read_statuspage.py exporter|statuscheck BASE_URL   (BASE_URL like http://127.0.0.1:PORT)
Prints one JSON object. Both libraries are used as their own code uses them; only the URL is ours.
"""

import json
import os
import sys
import tempfile


def exporter(base: str) -> dict:
    """statuspage-prometheus-exporter: the check it runs per poll, with a services.json naming our page."""
    work = tempfile.mkdtemp()
    services = os.path.join(work, "services.json")
    cfg = {"name": "Bridge", "type": "status_page", "url": base + "/api/v2/summary.json"}
    with open(services, "w") as f:
        json.dump({"bridge": cfg}, f)
    os.environ["SERVICES_JSON_PATH"] = services
    os.chdir(work)  # its response cache is written under ./cache
    from statuspage_prometheus_exporter.service_checker import check_service_status

    r = check_service_status("bridge", cfg)
    return {"success": r["success"], "status": r["status"], "raw_status": r["raw_status"],
            "status_text": r["status_text"], "details": r["details"],
            "components": {c["name"]: c["status_value"] for c in r["component_metadata"]}}


def statuscheck(base: str) -> dict:
    """statuscheck: its Statuspage.io reader, pointed at our page instead of *.statuspage.io."""
    from statuscheck.services.bases._statuspageio import BaseStatusPageAPI

    class Bridge(BaseStatusPageAPI):
        name = "Bridge"
        domain_id = "bridge"

        def _get_base_url(self) -> str:
            return base + "/api/v2/"

    summary = Bridge().get_summary()
    return {"code": summary.status.code, "name": summary.status.name, "is_ok": summary.status.is_ok,
            "description": summary.status.description,
            "components": {c.name: c.status for c in summary.components}}


if __name__ == "__main__":
    print(json.dumps({"exporter": exporter, "statuscheck": statuscheck}[sys.argv[1]](sys.argv[2].rstrip("/"))))
