"""The CLI end to end: --help everywhere, get, check-config exit codes, run and demo as real processes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.cli import build_parser, main
from tests.bridgeproc import poll, run_cli, spawn
from tests.conftest import MINI_STATUSDAT, REPO, free_port
from tests.procs import stop

COMMANDS = ["run", "demo", "check-config", "get", "notice", "override"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"status-bridge {command}" in out
    assert len(out.splitlines()) > 3


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("status-bridge ")


def test_parser_lists_all_commands():
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


def test_get_prints_feed(site, capsys):
    assert main(["get", "/api/services.json", "--config", str(site)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["stale"] is False
    assert body["groups"][0]["services"][0]["status_code"] == 2
    assert body["overall_status_name"] == "Major problems reported"


def test_get_include_headers_and_404(site, capsys):
    assert main(["get", "/nope", "--config", str(site), "-i"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("HTTP 404")
    assert '"status": 404' in out or '"status":404' in out


def test_check_config_ok_and_bad(site, tmp_path, capsys):
    assert main(["check-config", str(site)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[group]]\nid = "Web!"\nname = "Web"\n[nagios]\nstale_after = -1\n')
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.toml" in err
    assert "stale_after" in err
    assert "group[0].id" in err


def test_check_config_warns_unmatched(site, capsys):
    text = site.read_text().replace('service = "HTTP"', 'service = "SMTP"')
    site.write_text(text)
    assert main(["check-config", str(site)]) == 0
    assert "matches no" in capsys.readouterr().err


def test_run_invalid_config_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[page]\nnmae = 'typo'\n")
    proc = run_cli(["run", "--config", str(bad)])
    assert proc.returncode == 2
    assert "nmae" in proc.stderr


def wait_json(url: str, timeout: float, predicate=lambda body: True) -> dict:
    """Poll a loopback URL until it answers JSON satisfying predicate (bounded)."""
    return json.loads(poll(url, lambda body: predicate(json.loads(body)), timeout, interval=0.2))


def test_run_serves_and_follows_rename(site):
    port = int(site.read_text().split("127.0.0.1:")[1].split('"')[0])
    proc = spawn(["run", "--config", str(site)])
    try:
        url = f"http://127.0.0.1:{port}/api/services.json"
        body = wait_json(url, 20)
        assert body["groups"][0]["services"][0]["status_code"] == 2
        new = MINI_STATUSDAT.replace(b"current_state=2", b"current_state=0").replace(b"last_hard_state=2", b"last_hard_state=0")
        tmp = site.parent / "nagios.tmp123"
        tmp.write_bytes(new % int(time.time()))
        os.replace(tmp, site.parent / "status.dat")
        wait_json(url, 10, lambda b: b["groups"][0]["services"][0]["status_code"] == 0)
    finally:
        err = stop(proc)
    assert proc.returncode in (0, -15), err


def test_demo_serves_changing_data(tmp_path):
    port = free_port()
    proc = spawn(["demo", "--listen", f"127.0.0.1:{port}", "--dir", str(tmp_path), "--interval", "0.3"])
    try:
        url = f"http://127.0.0.1:{port}/api/services.json"
        first = wait_json(url, 20)
        assert first["stale"] is False
        assert len(first["groups"]) == 4
        wait_json(url, 10, lambda b: b["last_updated"] != first["last_updated"])
    finally:
        err = stop(proc)
    assert proc.returncode in (0, -15), err


def test_run_startup_config_error_is_a_message(tmp_path):
    cfg = tmp_path / "ic.toml"
    cfg.write_text(f'[icinga]\nurl = "https://localhost:5665"\nuser = "x"\npassword_file = "{tmp_path}/missing"\n'
                   f'[http]\nlisten = "127.0.0.1:{free_port()}"\n')
    proc = run_cli(["run", "--config", str(cfg), "--db", str(tmp_path / "db")])
    assert proc.returncode == 2
    assert "icinga.password_file" in proc.stderr
    assert "Traceback" not in proc.stderr


def _parsers(
    parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) for every command and nested subcommand."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for name, sub in action.choices.items():
            yield from _parsers(sub, (*path, name))


def test_every_command_and_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [path for path, _ in _parsers()]
    assert ("notice", "create") in paths and ("override", "remove") in paths and ("run",) in paths
    for path, parser in _parsers():
        assert parser.description, path
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: status-bridge {' '.join(path)}".rstrip()), path
        assert len(out.splitlines()) > 3, path
    for command in ("run", "demo"):
        parser = dict(_parsers())[(command,)]
        assert "--access-log" in parser.format_help() and "--log-level" in parser.format_help()


def test_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    """`pip install .` (non-editable): package data in the wheel, console script, python -m bridge."""
    import importlib.util
    import shutil
    import sysconfig
    import zipfile

    if importlib.util.find_spec("wheel") is None:
        pytest.fail("building the wheel offline needs `wheel` and setuptools>=68 (the [test] extra)")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    # A copy: an in-tree build would leave build/ and *.egg-info behind in the work tree.
    shutil.copytree(REPO / "bridge", src / "bridge", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, capture_output=True, timeout=180)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("status_bridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("bridge/demo/demo.toml", "bridge/templates/page.html", "bridge/templates/page.css",
                 "bridge/templates/icons.svg", "bridge/static/widget.js", "bridge/static/page.js"):  # fmt: skip
        assert data in names, data
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    # Dependencies come from this venv (offline), appended after the new venv's own site-packages.
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Not in the repo: no ./bridge to import by accident.
    run: dict = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 60, "check": False}
    version = subprocess.run([venv / "bin" / "status-bridge", "--version"], **run)
    assert version.returncode == 0 and version.stdout.startswith("status-bridge "), version.stderr
    where = subprocess.run([venv / "bin" / "python", "-c", "import bridge; print(bridge.__file__)"], **run).stdout
    assert where.startswith(str(venv)), where
    assert subprocess.run([venv / "bin" / "python", "-m", "bridge", "--help"], **run).returncode == 0
    cfg = tmp_path / "site.toml"
    cfg.write_text('[page]\nname = "Installed"\n')
    for path, expect in (("/", "Installed"), ("/widget.js", "data-target")):
        got = subprocess.run([venv / "bin" / "status-bridge", "get", path, "-c", str(cfg), "--db", str(tmp_path / "db")], **run)
        assert got.returncode == 0 and expect in got.stdout, (path, got.stderr)
