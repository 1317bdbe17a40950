"""A reload re-reads the admin and push token files; an unreadable file keeps that set's running tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.app import make_app
from bridge.config_load import load_config
from bridge.keys import SETTINGS
from bridge.reload import reload_config, reload_tokens
from bridge.settings import Settings, TokenFiles
from tests.conftest import WEB_GROUP_TOML, web_config

OLD_ADMIN, OLD_PUSH = "old-admin-token", "old-push-token"
NEW_ADMIN, NEW_PUSH = "new-admin-token", "new-push-token"
RESULT = {"results": [{"host": "web-1", "service": "HTTP", "state": 0, "output": "OK"}]}
MISSING, DIRECTORY = object(), object()  # token "files" that cannot be read


def token_file(path: Path, content: object, mode: int = 0o600) -> Path:
    """Write a token file (or make it unreadable: absent, or a directory)."""
    if content is DIRECTORY:
        path.mkdir()
    elif content is not MISSING:
        path.write_text(str(content))
        path.chmod(mode)
    return path


async def admin_ok(client, token: str) -> bool:
    """Whether the admin API takes token."""
    resp = await client.get("/api/v1/admin/notices", headers={"Authorization": f"Bearer {token}"})
    return resp.status == 200


async def push_ok(client, token: str) -> bool:
    """Whether the push API takes token."""
    resp = await client.post("/api/v1/check-results", json=RESULT, headers={"Authorization": f"Bearer {token}"})
    return resp.status == 200


@pytest.mark.parametrize(
    "admin_text, push_text, mode, ok, admin_after, push_after, logged",
    [
        (NEW_ADMIN, NEW_PUSH, 0o600, True, {NEW_ADMIN}, {NEW_PUSH}, "changed=admin,push"),
        (f"# rotating\n{OLD_ADMIN}\n{NEW_ADMIN}\n", OLD_PUSH, 0o600, True, {OLD_ADMIN, NEW_ADMIN}, {OLD_PUSH}, "changed=admin\n"),
        (NEW_ADMIN, NEW_PUSH, 0o644, True, {NEW_ADMIN}, {NEW_PUSH}, "{dir}/admin.token is readable by group/others"),
        (MISSING, NEW_PUSH, 0o600, False, {OLD_ADMIN}, {NEW_PUSH}, "keeping the running admin tokens file={dir}/admin.token"),
        (NEW_ADMIN, DIRECTORY, 0o600, False, {NEW_ADMIN}, {OLD_PUSH}, "keeping the running push tokens file={dir}/push.token"),
    ],
    ids=["rotated", "one-added", "too-open", "admin-unreadable", "push-unreadable"],
)
async def test_reload_reads_the_token_files_again(aiohttp_client, tmp_path, caplog, admin_text, push_text, mode, ok,
                                                  admin_after, push_after, logged):  # fmt: skip
    files = TokenFiles(token_file(tmp_path / "admin.token", admin_text, mode), token_file(tmp_path / "push.token", push_text, mode))
    settings = Settings(web_config(rate_limit=0.0), watch=False, db_path=tmp_path / "db.sqlite",
                        admin_tokens=(OLD_ADMIN,), push_tokens=(OLD_PUSH,), token_files=files)  # fmt: skip
    client = await aiohttp_client(make_app(settings))
    assert (await admin_ok(client, OLD_ADMIN), await push_ok(client, OLD_PUSH)) == (True, True)
    with caplog.at_level(logging.INFO, logger="bridge"):
        assert await reload_tokens(client.server.app) is ok
    for token in (OLD_ADMIN, NEW_ADMIN):
        assert await admin_ok(client, token) is (token in admin_after), token
    for token in (OLD_PUSH, NEW_PUSH):
        assert await push_ok(client, token) is (token in push_after), token
    assert logged.format(dir=tmp_path) in caplog.text + "\n"
    assert any(r.levelno == logging.ERROR for r in caplog.records) is not ok
    assert not {OLD_ADMIN, NEW_ADMIN, OLD_PUSH, NEW_PUSH} & set(caplog.text.split())  # counts and files, never tokens


async def test_emptied_file_turns_the_api_off(aiohttp_client, tmp_path):
    files = TokenFiles(token_file(tmp_path / "admin.token", "# no tokens: admin API off\n"), None)
    settings = Settings(web_config(), watch=False, admin_tokens=(OLD_ADMIN,), token_files=files)
    client = await aiohttp_client(make_app(settings))
    assert await reload_tokens(client.server.app)
    resp = await client.get("/api/v1/admin/notices", headers={"Authorization": f"Bearer {OLD_ADMIN}"})
    assert resp.status == 403 and "no tokens configured" in await resp.text()


async def test_tokens_given_directly_are_left_alone(aiohttp_client, tmp_path, monkeypatch):
    monkeypatch.setenv("STATUS_BRIDGE_ADMIN_TOKENS", NEW_ADMIN)
    monkeypatch.setenv("STATUS_BRIDGE_PUSH_TOKENS", NEW_PUSH)
    client = await aiohttp_client(make_app(Settings(web_config(), watch=False, admin_tokens=(OLD_ADMIN,), push_tokens=(OLD_PUSH,))))
    assert await reload_tokens(client.server.app)
    settings = client.server.app[SETTINGS]
    assert (settings.admin_tokens, settings.push_tokens) == ((OLD_ADMIN,), (OLD_PUSH,))


def site_config(tokens: str | None) -> str:
    """Group web, with [passive] tokens_file = tokens (no tokens_file if None)."""
    tokens_file = "" if tokens is None else f'tokens_file = "{tokens}"\n'
    return f'\n[page]\nname = "Token reload"\n[passive]\n{tokens_file}{WEB_GROUP_TOML}'


async def test_push_tokens_follow_a_reloaded_passive_tokens_file(aiohttp_client, tmp_path, monkeypatch):
    monkeypatch.setenv("STATUS_BRIDGE_PUSH_TOKENS", "from-env")
    token_file(tmp_path / "a.token", OLD_PUSH)
    token_file(tmp_path / "b.token", NEW_PUSH)
    cfg = tmp_path / "site.toml"
    cfg.write_text(site_config("a.token"))
    settings = Settings(load_config(cfg), watch=False, push_tokens=(OLD_PUSH,), token_files=TokenFiles())
    client = await aiohttp_client(make_app(settings))
    cfg.write_text(site_config("b.token"))
    assert await reload_config(client.server.app, cfg)
    assert settings.push_tokens == (NEW_PUSH,)
    # Without [passive] tokens_file (and no --push-token-file) the environment is next, as at start.
    cfg.write_text(site_config(None))
    assert await reload_config(client.server.app, cfg)
    assert settings.push_tokens == ("from-env",)
    # An invalid config keeps the old one, and with it the running push tokens file.
    cfg.write_text(site_config("b.token") + "[bogus]\n")
    assert not await reload_config(client.server.app, cfg)
    assert settings.push_tokens == ("from-env",)
