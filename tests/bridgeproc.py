"""status-bridge as a child process: `python -m bridge` from this tree, its site config, and HTTP probes of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

from tests.conftest import HANG_GUARD, REPO, web_group_toml
from tests.procs import await_ready, launch, stop, tail

START_TIMEOUT = 20.0


def site_toml(port: int | str, name: str, statusdat: Path | str | None = None, stale_after: float = 600,
              http: str = "", website: str = "HTTP", web_extra: str = "") -> str:  # fmt: skip
    """A site config: [page] name; a [nagios] source on statusdat if given; [http] on 127.0.0.1:port without a cache,
    plus http lines; groups web (website: web-1 `website`, then web_extra components) and data (database: db-1 PostgreSQL).
    """
    source = "" if statusdat is None else f'[nagios]\nstatus_file = "{statusdat}"\nstale_after = {stale_after}\n'
    return f"""
[page]
name = "{name}"
{source}[http]
listen = "127.0.0.1:{port}"
cache_seconds = 0
{http}{web_group_toml(service=website)}{web_extra}[[group]]
id = "data"
name = "Data"
  [[group.component]]
  id = "database"
  name = "Database"
  checks = [{{ host = "db-1", service = "PostgreSQL" }}]
"""


def run_cli(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`python -m bridge ARGS` to completion (bounded), output captured."""
    cmd = [sys.executable, "-m", "bridge", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30, cwd=REPO)


def spawn(args: Sequence[str], prefix: Sequence[str] = (), output: Path | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:  # fmt: skip
    """Start `[PREFIX] python -m bridge ARGS` unbuffered, env added to ours; stderr to a pipe, or with stdout appended
    to output."""
    cmd = [*prefix, sys.executable, "-m", "bridge", *args]
    # cwd: the tree under test, even without an installed package.
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    kwargs = {"cwd": REPO, "env": full_env, "stdin": subprocess.DEVNULL, "text": True}
    if output is not None:
        return launch(cmd, output, **kwargs)
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, **kwargs)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One bounded GET; HTTP errors are answers too (status, body), connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closes the response; an unclosed one is a ResourceWarning, an error here
            return exc.code, exc.read()


def poll(url: str, pred: Callable[[bytes], bool] = lambda body: True, timeout: float = HANG_GUARD, interval: float = 0.1) -> bytes:
    """GET url until it answers 200 with a body pred accepts; bounded, failing with the last answer seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(url)
            if status == 200 and pred(body):
                return body
            last = body[:500]
        except OSError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{url}: condition not met in {timeout}s; last {last!r}")


class BridgeProcess:
    """`python -m bridge run --config CONFIG ARGS` as a child process serving on 127.0.0.1:port; restartable."""

    def __init__(self, config: Path, port: int, args: Sequence[str] = (), prefix: Sequence[str] = (),
                 output: Path | None = None, ready: str | None = "/healthz",
                 env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        """prefix: a command run in front of python; output: a file for its stderr (readable while it runs) instead
        of a pipe; ready: the path that answers 200 once it serves (None: start does not wait); env: added to ours."""
        self.config, self.port, self.args, self.prefix, self.output, self.ready = config, port, args, prefix, output, ready
        self.env = env
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None
        self.stderr = ""  # from the pipe, all runs so far

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start and, unless ready is None, wait until it serves; fail the test with its stderr if it exits or never serves."""
        self.proc = spawn(["run", "--config", str(self.config), *self.args], self.prefix, self.output, self.env)
        ready = self.ready
        if ready is None:
            return self

        def answers() -> bool:
            try:
                return self.get(ready)[0] == 200
            except OSError:
                return False

        await_ready(self.proc, answers, timeout, f"status-bridge on {self.base}", self._stopped_diagnostics)
        return self

    def stop(self, timeout: float = 10.0) -> str:
        """SIGTERM with a bounded wait (nothing when not running); the stderr of the run it ended."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        err = stop(proc, timeout)
        self.stderr += err
        self.returncode = proc.returncode
        return err

    def get(self, path: str) -> tuple[int, bytes]:
        """GET path: (status, body); connection errors raise OSError."""
        return http_get(self.base + path)

    def diagnostics(self) -> str:
        """Its stderr so far, for failure messages."""
        if self.output is not None:
            return f"--- status-bridge stderr ({self.output}) ---\n{tail(self.output)}"
        return f"--- status-bridge stderr ---\n{self.stderr}"

    def _stopped_diagnostics(self) -> str:
        """Stop it (a pipe is read to the end only then) and return diagnostics."""
        self.stop()
        return self.diagnostics()

    def __enter__(self) -> Self:
        """Start on entering the with block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Always stop."""
        self.stop()
