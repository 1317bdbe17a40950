"""Publishing a few changed checks of one source in place: Live's own merged data and its caches, in O(changed).

A full publish merges every source (copying the biggest) and counts every component's checks: O(checks),
in a worker thread. A source that can say which checks changed (the passive store) instead gets them
applied to Live's own copy of the merged data, on the loop: per changed check the sources are asked
for it alone (bridge.merge.merge_one) and the cached counts are moved (bridge.aggregate_delta).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from bridge.aggregate_delta import update_caches
from bridge.config import Config
from bridge.matching import CheckKey, Matcher
from bridge.merge import Merged, SourceView, merge_one
from bridge.model import CheckState, SourceHealth, StatusData

# Changed checks applied on the event loop at once (~10 us each with 100 components: 512 take ~5 ms); a bigger
# batch goes to a full merge in a worker thread, which keeps the loop free.
IN_PLACE_MAX = 512


class ChangedSource(Protocol):
    """A source that tells which checks changed (bridge.passive_store.PassiveStore)."""

    @property
    def name(self) -> str:
        """The source's name in Live.sources."""

    def state(self, key: CheckKey) -> CheckState | None:
        """The source's current state of one check."""

    def is_stale(self, key: CheckKey) -> bool:
        """Whether the source's state of one check is stale."""

    def health(self) -> SourceHealth:
        """The source's current health."""

    def view(self) -> SourceView:
        """Everything the source holds, for a full merge."""

    def __len__(self) -> int:
        """Checks the source holds (none: its view has no data, which only a full merge can publish)."""


def owned(merged: Merged, views: Sequence[SourceView]) -> Merged:
    """merged with data and stale keys Live may change in place: data is copied when it is a source's own object."""
    data = merged.data
    if data is not None and any(data is v.data for v in views):
        data = StatusData(created=data.created, version=data.version, hosts=dict(data.hosts), services=dict(data.services))
    return Merged(data, merged.health, set(merged.stale_keys))


def apply_in_place(data: StatusData, stale_keys: set[CheckKey], views: Sequence[SourceView], source: ChangedSource,
                   keys: Iterable[CheckKey], config: Config, matcher: Matcher) -> bool:
    """Apply source's changed checks to data (Live's own) and its caches; views hold source's current health.

    False, with nothing touched, when a check would appear or vanish (names and positions change: a full
    merge re-indexes) or when data's caches are gone.
    """
    memo = matcher.peek(data)
    if memo is None:
        return False
    new: dict[CheckKey, CheckState] = {}
    flips: dict[CheckKey, bool] = {}
    hosts, services = data.hosts, data.services
    for key in keys:
        state, stale = merge_one(key, views, source.name, source.state, source.is_stale)
        old = hosts.get(key[0]) if key[1] is None else services.get(key)  # type: ignore[call-overload]
        if old is None or state is None:
            if old is None and state is None:
                continue  # gone from the source, and no other source has it either
            return False
        if state != old:
            new[key] = state
        if stale != (key in stale_keys):
            flips[key] = stale
    update_caches(memo, data, new, flips, config, stale_keys)
    for key, state in new.items():
        if key[1] is None:
            hosts[key[0]] = state
        else:
            services[key] = state  # type: ignore[index]
    for key, stale in flips.items():
        if stale:
            stale_keys.add(key)
        else:
            stale_keys.discard(key)
    created = [v.data.created for v in views if v.data is not None and v.name != source.name]
    # StatusData is frozen for everyone else; Live's own copy follows its newest source like a merge would.
    object.__setattr__(data, "created", max([*created, source.health().data_created or 0.0]))
    return True
