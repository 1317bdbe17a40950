"""Feed bodies encoded once per snapshot (with ETags, JSONP forms and headers), one published generation, a per-query cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy, istr

from bridge.model import Snapshot

JSON_TYPE = "application/json; charset=utf-8"
JS_TYPE = "application/javascript; charset=utf-8"
ETAG = istr("ETag")  # spelled as RFC 9110 does (aiohttp's hdrs.ETAG goes out as "Etag")
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

    def headers(self, max_age: int, with_type: bool = True) -> CIMultiDictProxy[str]:
        """Response headers of this body (a 304 carries them without Content-Type), read-only."""
        key = (max_age, with_type)
        hit = self._memo.get(key)
        if hit is None:
            headers = CIMultiDict({hdrs.CONTENT_TYPE: self.content_type} if with_type else {})
            headers[ETAG] = self.etag
            headers[hdrs.CACHE_CONTROL] = f"public, max-age={max_age}"
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
            if self.content_type == JS_TYPE:
                headers[hdrs.X_CONTENT_TYPE_OPTIONS] = "nosniff"
            # Case-folded once here: aiohttp's Response copies a multidict without folding each name again.
            hit = self._remember(key, CIMultiDictProxy(headers))
        return hit  # type: ignore[return-value]


@dataclass(frozen=True)
class Published:
    """One consistent generation: the snapshot and every feed rendered from it."""

    snapshot: Snapshot
    feeds: dict[str, Encoded]


class DocCache:
    """Encoded documents by raw query string, valid for one snapshot (by identity) and, with a ttl, one time bucket.

    The hot read APIs are functions of the snapshot (and of the metrics_summary time bucket):
    encode them once per generation instead of once per request. Entries are bounded, since
    query strings are client input.
    """

    MAX = 256

    def __init__(self, ttl: float | None = None) -> None:
        """ttl: the documents also expire at each multiple of ttl seconds since the epoch."""
        self.ttl = ttl
        self.snap: Snapshot | None = None
        # The current bucket as [start, until): a float comparison per request, not a division.
        self.start, self.until = -math.inf, math.inf
        self.docs: dict[str, Encoded] = {}

    def get(self, snap: Snapshot, now: float, query: str) -> Encoded | None:
        """The document cached for query under this snapshot and now's time bucket, or None."""
        if snap is not self.snap or not self.start <= now < self.until:
            self.snap, self.docs = snap, {}
            if self.ttl is not None:
                self.start = now // self.ttl * self.ttl
                self.until = self.start + self.ttl
        return self.docs.get(query)

    def put(self, query: str, doc: Encoded) -> Encoded:
        """Remember doc for query (under the stamp of the last get)."""
        if len(self.docs) >= self.MAX:
            self.docs.clear()
        self.docs[query] = doc
        return doc
