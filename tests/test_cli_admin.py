"""The notice/override CLI: --help, validation and output in-process, and end to end against a running daemon."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from bridge import database
from bridge.cli import main
from bridge.cli_admin import load_admin_tokens
from tests.bridgeproc import run_cli, spawn
from tests.conftest import HANG_GUARD
from tests.procs import stop
from tests.test_cli import wait_json

SUBCOMMANDS = [
    ["notice"],
    ["notice", "create"],
    ["notice", "update"],
    ["notice", "list"],
    ["notice", "show"],
    ["override"],
    ["override", "add"],
    ["override", "update"],
    ["override", "list"],
    ["override", "remove"],
]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"status-bridge {' '.join(command)}" in out
    assert len(out.splitlines()) > 3
    if len(command) == 2:
        assert "--db" in out and "--json" in out


def test_notice_lifecycle(site, tmp_path, capsys):
    db = str(tmp_path / "db.sqlite")
    code, out, _ = cli(capsys, "notice", "create", "--db", db, "--config", str(site), "--type", "unplanned",
                       "--subject", "Email delays", "--component", "website", "--content", "Investigating", "--json")
    assert code == 0
    notice = json.loads(out)["notice"]
    assert (notice["id"], notice["state"], notice["components"]) == (1, "investigating", ["website"])

    code, out, _ = cli(capsys, "notice", "update", "1", "--db", db, "--state", "resolved", "--content", "Fixed")
    assert code == 0 and "resolved: Fixed" in out
    code, out, _ = cli(capsys, "notice", "list", "--db", db)
    assert code == 0
    header, _rule, row = out.splitlines()
    assert header.split()[:3] == ["ID", "TYPE", "STATE"]
    assert row.split()[:4] == ["1", "unplanned", "resolved", "past_recent"] and row.endswith("Email delays")
    code, out, _ = cli(capsys, "notice", "show", "1", "--db", db, "--json")
    assert [u["content"] for u in json.loads(out)["notice"]["updates"]] == ["Investigating", "Fixed"]

    code, out, _ = cli(capsys, "notice", "create", "--db", db, "--type", "planned", "--subject", "Upgrade",
                       "--begins-at", "2030-01-01T10:00Z", "--ends-at", "1893495600", "--json")
    planned = json.loads(out)["notice"]
    assert (planned["begins_at"], planned["ends_at"]) == ("2030-01-01T10:00:00.000Z", "2030-01-01T11:00:00.000Z")
    code, out, _ = cli(capsys, "notice", "update", "2", "--db", db, "--ends-at", "2030-01-01T12:00Z", "--subject", "Big upgrade")
    assert code == 0 and "Big upgrade" in out and "2030-01-01 12:00Z" in out
    code, out, _ = cli(capsys, "notice", "list", "--db", db, "--type", "planned", "--json")
    assert [n["subject"] for n in json.loads(out)["notices"]] == ["Big upgrade"]


@pytest.mark.parametrize(
    "args, field",
    [
        (["notice", "create", "--type", "outage", "--subject", "x"], "type"),
        (["notice", "create", "--type", "unplanned", "--subject", ""], "subject"),
        (["notice", "create", "--type", "unplanned", "--subject", "x", "--state", "underway"], "state"),
        (["notice", "create", "--type", "unplanned", "--subject", "x", "--component", "website"], "config"),
        (["notice", "create", "--type", "unplanned", "--subject", "x", "--component", "nope", "--config", "{site}"], "components[0]"),
        (["notice", "create", "--type", "planned", "--subject", "x", "--begins-at", "2030-01-01T10:00Z"], "ends_at"),
        (["notice", "create", "--type", "planned", "--subject", "x", "--begins-at", "2030-01-01T10:00Z", "--ends-at", "2030-01-01T09:00Z"], "ends_at"),
        (["notice", "create", "--type", "planned", "--subject", "x", "--begins-at", "tomorrow", "--ends-at", "2030-01-01T09:00Z"], "begins_at"),
        (["notice", "update", "1", "--state", "resolved"], "content"),
        (["notice", "update", "1", "--state", "complete", "--content", "x"], "state"),
        (["notice", "update", "1", "--subject", "Renamed", "--state", "complete", "--content", "x"], "state"),
        (["notice", "update", "1"], "update"),
        (["override", "add", "--component", "website", "--status", "down", "--reason", "x"], "config"),
        (["override", "add", "--config", "{site}", "--component", "web", "--status", "down", "--reason", "x"], "component"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "broken", "--reason", "x"], "status"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--reason", " "], "reason"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--message", " "], "message"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--message", "a\nb"], "message"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--message", "\x1b[31m"], "message"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--reason", "x" * 1001], "reason"),
        (["override", "add", "--config", "{site}", "--component", "website", "--status", "down", "--reason", "x",
          "--starts-at", "2030-01-02T00:00Z", "--ends-at", "2030-01-01T00:00Z"], "ends_at"),
    ],
)
def test_bad_input_exits_2_naming_the_field(site, tmp_path, capsys, args, field):
    db = str(tmp_path / "db.sqlite")
    assert cli(capsys, "notice", "create", "--db", db, "--type", "unplanned", "--subject", "Existing")[0] == 0
    code, out, err = cli(capsys, *[a.replace("{site}", str(site)) for a in args], "--db", db)
    assert code == 2, err
    assert err.startswith(f"error: {field}: "), err
    assert out == ""
    code, out, _ = cli(capsys, "notice", "list", "--db", db, "--json")
    notices = json.loads(out)["notices"]
    assert [(n["subject"], len(n["updates"])) for n in notices] == [("Existing", 1)]  # nothing written
    assert json.loads(cli(capsys, "override", "list", "--db", db, "--json")[1]) == {"overrides": []}


@pytest.mark.parametrize("command", [["override", "add"], ["override", "update"], ["override"]], ids=" ".join)
def test_override_help_says_which_text_is_public(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help at the terminal width
    if command == ["override"]:
        assert "--message is public" in text and "--reason is private" in text, text
    else:
        assert "--message MESSAGE PUBLIC text shown on the page and in the Oxford feed" in text, text
        assert "--reason REASON PRIVATE note for administrators" in text and "never published" in text, text


def test_override_message_public_reason_private(site, tmp_path, capsys):
    db = str(tmp_path / "db.sqlite")
    code, out, err = cli(capsys, "override", "add", "--db", db, "--config", str(site), "--component", "website",
                         "--status", "down", "--message", "Moving to a new provider", "--reason", "Ticket 4711")
    assert code == 0, err
    assert out.splitlines()[1:] == ["  message (public): Moving to a new provider", "  reason (private): Ticket 4711"]
    code, out, err = cli(capsys, "override", "add", "--db", db, "--config", str(site), "--component", "website",
                         "--status", "maintenance", "--starts-at", "2098-01-01T00:00Z", "--ends-at", "2099-01-01T00:00Z", "--json")
    assert code == 0, err
    bare = json.loads(out)["override"]
    assert (bare["message"], bare["reason"], bare["ends_at"]) == (None, None, "2099-01-01T00:00:00.000Z")

    code, out, _ = cli(capsys, "override", "list", "--db", db)
    header, _rule, *rows = [re.split(r" {2,}", line) for line in out.splitlines()]
    assert header[-2:] == ["MESSAGE (PUBLIC)", "REASON (PRIVATE)"]
    assert [r[-2:] for r in rows] == [["Moving to a new provider", "Ticket 4711"], ["-", "-"]]

    code, out, err = cli(capsys, "override", "update", "1", "--db", db, "--clear-reason", "--message", "Provider switch",
                         "--status", "partial", "--json")
    assert code == 0, err
    changed = json.loads(out)["override"]
    assert (changed["status"], changed["message"], changed["reason"]) == ("partial", "Provider switch", None)
    code, out, err = cli(capsys, "override", "update", "2", "--db", db, "--until-removed", "--reason", "Rack move")
    assert code == 0, err
    code, out, _ = cli(capsys, "override", "list", "--db", db, "--json")
    listed = [(o["message"], o["reason"], o["ends_at"]) for o in json.loads(out)["overrides"]]
    assert listed == [("Provider switch", None, None), (None, "Rack move", None)]

    for args, field in ((["1"], "update"), (["1", "--message", ""], "message"), (["2", "--ends-at", "2001-01-01T00:00Z"], "ends_at"),
                        (["1", "--starts-at", "2100-01-01T00:00Z", "--ends-at", "2099-01-01T00:00Z"], "ends_at")):  # fmt: skip
        code, out, err = cli(capsys, "override", "update", *args, "--db", db)
        assert (code, err.split(":")[:2]) == (2, ["error", f" {field}"]), err
    code, out, _ = cli(capsys, "override", "list", "--db", db, "--json")
    assert [(o["message"], o["reason"], o["ends_at"]) for o in json.loads(out)["overrides"]] == listed  # nothing written
    code, _, err = cli(capsys, "override", "update", "7", "--db", db, "--message", "x")
    assert (code, err.split(":")[:2]) == (1, ["error", " id"])


def test_unknown_ids_and_missing_db(tmp_path, capsys):
    db = str(tmp_path / "db.sqlite")
    assert cli(capsys, "notice", "show", "1", "--db", db)[2].startswith("error: db: ")
    assert not Path(db).exists()  # readers never create a database
    cli(capsys, "override", "list", "--db", db.replace("db.sqlite", "other.sqlite"))
    assert cli(capsys, "notice", "create", "--db", db, "--type", "unplanned", "--subject", "x")[0] == 0
    for args in (["notice", "show", "7"], ["notice", "update", "7", "--content", "x"], ["override", "remove", "7"]):
        code, _, err = cli(capsys, *args, "--db", db)
        assert (code, err.split(":")[:2]) == (1, ["error", " id"])
    with pytest.raises(SystemExit) as exc:
        main(["notice", "show", "abc", "--db", db])
    assert exc.value.code == 2


def test_admin_tokens_from_file_or_env(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATUS_BRIDGE_ADMIN_TOKENS", "one, two  three")
    assert load_admin_tokens(None) == ("one", "two", "three")
    path = tmp_path / "tokens"
    path.write_text("# admin tokens\nalpha\n\n  beta  \n")
    path.chmod(0o600)
    assert load_admin_tokens(path) == ("alpha", "beta")
    assert capsys.readouterr().err == ""
    path.chmod(0o644)
    assert load_admin_tokens(path) == ("alpha", "beta")
    assert "chmod 600" in capsys.readouterr().err
    monkeypatch.delenv("STATUS_BRIDGE_ADMIN_TOKENS")
    assert load_admin_tokens(None) == ()
    with pytest.raises(SystemExit):
        load_admin_tokens(tmp_path / "missing")


def admin_get(url: str, token: str) -> dict:
    """GET an admin URL with a bearer token."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=HANG_GUARD) as resp:
        return json.loads(resp.read())


def test_cli_writes_reach_running_daemon(site, tmp_path):
    port = int(site.read_text().split("127.0.0.1:")[1].split('"')[0])
    db = str(tmp_path / "daemon.sqlite")
    tokens = tmp_path / "tokens"
    tokens.write_text("daemon-token\n")
    tokens.chmod(0o600)
    proc = spawn(["run", "--config", str(site), "--db", db, "--admin-token-file", str(tokens)])
    base = f"http://127.0.0.1:{port}"
    try:
        first = wait_json(f"{base}/api/services.json", 20)
        website = first["groups"][0]["services"][0]
        assert (website["status"], website["monitored_status"]) == ("down", "down")
        assert wait_json(f"{base}/api/announcements.json", 5) == []

        added = run_cli(["override", "add", "--db", db, "--config", str(site), "--component", "website",
                         "--status", "maintenance", "--ends-at", "2099-12-01T10:00Z", "--message", "Firewall work", "--json"])
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["override"]["active"] is True
        body = wait_json(f"{base}/api/services.json", 2, lambda b: b["groups"][0]["services"][0]["status"] == "maintenance")
        assert body["groups"][0]["services"][0]["monitored_status"] == "down"
        assert body["groups"][0]["services"][0]["override"]["message"] == "Firewall work"

        created = run_cli(["notice", "create", "--db", db, "--config", str(site), "--type", "unplanned",
                           "--subject", "Email delays", "--component", "website", "--content", "Investigating"])
        assert created.returncode == 0, created.stderr
        news = wait_json(f"{base}/api/announcements.json", 2, lambda b: len(b) == 1)
        assert "Email delays" in news[0]["message"]
        listed = admin_get(f"{base}/api/v1/admin/notices", "daemon-token")["notices"]
        assert [(n["subject"], n["components"]) for n in listed] == [("Email delays", ["website"])]

        removed = run_cli(["override", "remove", "1", "--db", db])
        assert removed.returncode == 0, removed.stderr
        wait_json(f"{base}/api/services.json", 2, lambda b: b["groups"][0]["services"][0]["status"] == "down")
    finally:
        err = stop(proc)
    assert proc.returncode in (0, -15), err
    assert "daemon-token" not in err


def test_a_lock_held_past_the_busy_timeout_is_an_error_not_a_traceback(site, tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "db.sqlite")
    assert cli(capsys, "notice", "create", "--db", db, "--type", "unplanned", "--subject", "First")[0] == 0
    monkeypatch.setattr(database, "BUSY_TIMEOUT", 0.1)  # the lock is held until the CLI has given up: any value works
    holder = sqlite3.connect(db, isolation_level=None)  # the daemon (or another CLI) in the middle of a write
    holder.execute("BEGIN IMMEDIATE")
    try:
        for args in (["notice", "create", "--type", "unplanned", "--subject", "Second"],
                     ["override", "add", "-c", str(site), "--component", "website", "--status", "down"]):
            code, _, err = cli(capsys, *args, "--db", db)
            assert code == 1 and err.startswith("error: db: the database is locked by another writer"), err
            assert "nothing was written" in err and "Traceback" not in err
    finally:
        holder.execute("COMMIT")
        holder.close()
    code, out, _ = cli(capsys, "notice", "list", "--db", db, "--json")
    assert code == 0 and [n["subject"] for n in json.loads(out)["notices"]] == ["First"]
