"""Shared token checks: constant-time comparison, bearer-header auth and reading tokens (admin and push APIs)."""

from __future__ import annotations

import hmac
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from aiohttp import web

from bridge.config import Config
from bridge.front import FRONT
from bridge.http import error_response
from bridge.keys import SETTINGS

log = logging.getLogger("bridge.auth")

ADMIN_TOKENS_ENV = "STATUS_BRIDGE_ADMIN_TOKENS"
PUSH_TOKENS_ENV = "STATUS_BRIDGE_PUSH_TOKENS"
MIN_TOKEN_CHARS = 16  # shorter tokens get a warning at start and on reload: the rate limit only slows guessing


class TokenFileError(Exception):
    """A token file that cannot be read: which tokens, which file, why."""

    def __init__(self, what: str, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {what} token file {path}: {reason}")
        self.what, self.path, self.reason = what, path, reason


class TokenSet(NamedTuple):
    """Tokens as read, the file they came from (None: the environment) and whether it is group/world readable."""

    tokens: tuple[str, ...]
    path: Path | None
    too_open: bool
    what: str = "admin"  # which API they open: admin or push
    env_var: str = ADMIN_TOKENS_ENV  # where they came from when path is None

    def short_warning(self) -> str | None:
        """A warning naming where tokens shorter than MIN_TOKEN_CHARS came from (never the tokens), or None."""
        short = sum(len(t) < MIN_TOKEN_CHARS for t in self.tokens)
        if not short:
            return None
        where = str(self.path) if self.path is not None else f"${self.env_var}"
        return (f"{short} of {len(self.tokens)} {self.what} tokens in {where} are shorter than {MIN_TOKEN_CHARS} "
                "characters and could be guessed; use long random ones (openssl rand -hex 32)")  # fmt: skip


def token_ok(given: str, tokens: Sequence[str]) -> bool:
    """True when given equals one of tokens; compares against every token so timing reveals nothing."""
    ok = False
    # A header byte that is not UTF-8 arrives as a lone surrogate (and the environment's tokens may hold
    # some): encoded as they are, they can only ever equal the same bytes, never raise.
    raw = given.encode("utf-8", "surrogatepass")
    for token in tokens:
        ok |= hmac.compare_digest(token.encode("utf-8", "surrogatepass"), raw)
    return ok


def bearer_error(request: web.Request, tokens: Sequence[str], api: str, label: str) -> web.Response | None:
    """None when the request carries one of tokens as a bearer token, else the 401/403 response (label: log/realm)."""
    if not tokens:
        # Never open by default: an API without configured tokens is off, not public.
        return error_response(403, f"{api} disabled: no tokens configured")
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        resp = error_response(401, "missing or malformed Authorization header: expected 'Bearer TOKEN'", "Authorization")
        resp.headers["WWW-Authenticate"] = f'Bearer realm="status-bridge {label}"'
        return resp
    if not token_ok(given, tokens):
        # The token itself is never logged: a near-miss is usually a real secret with a typo.
        log.warning("%s: rejected token from %s for %s %s", label, request.remote, request.method, request.path)
        return error_response(403, "invalid token", "Authorization")
    front = request.app.get(FRONT)
    if front is not None:
        front.accept(request)  # a valid token: not charged to the rate limit unless the answer is an error
    return None


def admin_auth_error(request: web.Request) -> web.Response | None:
    """The admin API's bearer check against Settings.admin_tokens."""
    return bearer_error(request, request.app[SETTINGS].admin_tokens, "admin API", "admin")


def read_token_file(path: Path) -> tuple[tuple[str, ...], bool]:
    """(tokens, too_open) from a file of one token per line with # comments; raises OSError/UnicodeDecodeError."""
    text = Path(path).read_text(encoding="utf-8")
    too_open = bool(Path(path).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return tokens, too_open


def env_tokens(value: str) -> tuple[str, ...]:
    """Tokens from an environment variable's comma- or space-separated value."""
    return tuple(t for t in value.replace(",", " ").split() if t)


def token_set(path: Path | None, env_var: str, what: str) -> TokenSet:
    """Tokens from path (one per line, # comments), else from $env_var; TokenFileError when path is unreadable."""
    if path is None:
        return TokenSet(env_tokens(os.environ.get(env_var, "")), None, False, what, env_var)
    try:
        tokens, too_open = read_token_file(path)
    except (OSError, UnicodeDecodeError) as e:
        raise TokenFileError(what, path, str(e)) from None
    return TokenSet(tokens, path, too_open, what, env_var)


def admin_token_set(path: Path | None) -> TokenSet:
    """Admin tokens from --admin-token-file, else $STATUS_BRIDGE_ADMIN_TOKENS."""
    return token_set(path, ADMIN_TOKENS_ENV, "admin")


def push_token_set(path: Path | None, config: Config) -> TokenSet:
    """Push tokens from --push-token-file, else [passive] tokens_file, else $STATUS_BRIDGE_PUSH_TOKENS."""
    return token_set(path or config.passive_tokens_file, PUSH_TOKENS_ENV, "push")
