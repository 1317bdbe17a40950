"""Feed bodies encoded once per snapshot (with ETags, JSONP forms and headers), and one published generation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from bridge.model import Snapshot

JSON_TYPE = "application/json; charset=utf-8"
JS_TYPE = "application/javascript; charset=utf-8"
_VARIANTS_MAX = 64  # JSONP callbacks and max-ages remembered per body; a flood of names just recomputes


@dataclass(frozen=True)
class Encoded:
    """A feed body encoded once per snapshot, with its strong ETag; JSONP forms and headers made once too."""

    body: bytes
    etag: str
    content_type: str = JSON_TYPE
    # Per-request work done once per generation: JSONP bodies by callback, header sets by max-age.
    _memo: dict[object, object] = dataclasses.field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def of(cls, obj: object) -> Encoded:
        """Encode obj as compact UTF-8 JSON and hash it for the ETag."""
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')

    def _remember(self, key: object, value: object) -> object:
        """Store one memo entry, forgetting them all past _VARIANTS_MAX (callbacks are client input)."""
        if len(self._memo) >= _VARIANTS_MAX:
            self._memo.clear()
        self._memo[key] = value
        return value

    def jsonp(self, callback: str) -> Encoded:
        """The body wrapped as `/**/callback(...);` (callback already validated), with its own ETag."""
        hit = self._memo.get(callback)
        if hit is None:
            body = b"/**/" + callback.encode() + b"(" + self.body + b");"
            etag = '"' + hashlib.blake2b(self.etag.encode() + callback.encode(), digest_size=12).hexdigest() + '"'
            hit = self._remember(callback, Encoded(body, etag, JS_TYPE))
        return hit  # type: ignore[return-value]

    def headers(self, max_age: int, with_type: bool = True) -> dict[str, str]:
        """Response headers of this body (a 304 carries them without Content-Type); copy before changing."""
        key = (max_age, with_type)
        hit = self._memo.get(key)
        if hit is None:
            headers = {"Content-Type": self.content_type} if with_type else {}
            headers.update({"ETag": self.etag, "Cache-Control": f"public, max-age={max_age}",
                            "Access-Control-Allow-Origin": "*"})  # fmt: skip
            if self.content_type == JS_TYPE:
                headers["X-Content-Type-Options"] = "nosniff"
            hit = self._remember(key, headers)
        return hit  # type: ignore[return-value]


@dataclass(frozen=True)
class Published:
    """One consistent generation: the snapshot and every feed rendered from it."""

    snapshot: Snapshot
    feeds: dict[str, Encoded]
