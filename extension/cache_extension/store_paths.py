"""Groups in the cache: the Store's part that turns one listing into an entry per value. A `parameters:` group by
path (config_paths.py, GetParametersByPath) and a `secrets:` group by filter (config_filters.py,
BatchGetSecretValue with Filters) work alike; a path stands for either below.

The group's own entry (an Item with a Listing) is fetched, refreshed ahead and retried like any other; its
value is the listing (fetchers/ssm_path.PathValues). When it settles, each listed parameter's entry (an Item whose
member_of is the path) gets its value with the group's expiry, so a path of 100 parameters costs its 10 pages
per TTL and nothing more. A member is never fetched on its own by a read or refresh-ahead: the group is
(reads wait for the listing, or are served a stale value meanwhile). A name the group's fresh listing did not
return is 404 at once, with no AWS call; one that a later listing no longer returns keeps its value until its
stale window ends, then answers 404 the same way, and its entry is dropped.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from .config import Item
from .fetchers import FetchError, Value
from .fetchers.base import not_found
from .logs import printable

log = logging.getLogger("cache_extension.store")


NOUNS = {"parameters": "parameter", "secrets": "secret"}


def group_key(source: str, path: str) -> tuple:
    """store.entry_key of the group `path` of `source`."""
    return (source, path, None, None, "path")


def member_key(item) -> tuple:
    return (item.source, item.name, None, None)


class PathGroups:
    """Mixed into Store: it has _entries, _lock, _metrics and _settle, and calls these at the points named."""

    def _init_paths(self) -> None:
        self._members: dict[str, frozenset[str]] = {}  # path -> the names its last listing returned
        self._waiters: dict[str, list] = {}  # path -> member entries waiting for its listing
        self._truncated: set[str] = set()  # paths whose max was reached (logged once)

    def listed(self) -> tuple[int, int]:
        """(groups listed so far, the names their last listings returned), for the prefetch's log line."""
        with self._lock:
            return len(self._members), sum(len(names) for names in self._members.values())

    def _by_group(self, start: list, now: float) -> tuple[list, list]:
        """Entries just marked in flight, with every path member replaced by its group, which is marked in flight
        once (members wait for its listing); the second list holds (member, error) to answer with no call: 404
        for a name the group's fresh listing did not return, the group's own error while it is held (a read loop
        during an outage lists no more often than any other failed item is fetched). Caller holds the lock."""
        fetch, gone = [], []
        for entry in start:
            path = entry.item.member_of
            group = self._entries.get(group_key(entry.item.source, path)) if path is not None else None
            if group is None:
                fetch.append(entry)
                continue
            cached = group.cached
            if group.pending is None and cached is not None and now < cached[2]:
                # Listed since this member's value was: the listing is the truth until the group expires.
                if entry.item.name in self._members.get(path, ()):
                    fetch.append(entry)
                else:
                    gone.append((entry, not_found(NOUNS[entry.item.source])))
                continue
            failed = group.failed
            if group.pending is None and failed is not None and now < failed[1] and not entry.servable(now):
                gone.append((entry, failed[0]))
                continue
            self._waiters.setdefault(path, []).append(entry)
            if group.pending is None:
                group.pending = Future()
                fetch.append(group)
        return fetch, gone

    def _adopt(self, group, outcome: Value | FetchError) -> list[tuple[object, Value | FetchError]]:
        """After the group `group` settled: what each member entry settles with (new entries made for names
        listed for the first time)."""
        path, source = group.item.name, group.item.source
        with self._lock:
            waiters = self._waiters.pop(path, [])
            if isinstance(outcome, FetchError):
                return [(entry, outcome) for entry in waiters]
            members = getattr(outcome, "members", {})
            self._members[path] = frozenset(members)
            settle = []
            for name, value in members.items():
                item = Item(source, name, group.item.region, group.item.ttl, group.item.stale,
                            member_of=path, line=group.item.line)
                key = member_key(item)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = type(group)(item)
                elif entry.item.member_of != path:
                    continue  # listed by name in config.yaml too: that item is fetched on its own
                settle.append((entry, value))
            settle += [(entry, not_found(NOUNS[source])) for entry in waiters if entry.item.name not in members]
            first = getattr(outcome, "truncated", False) and path not in self._truncated
            if first:
                self._truncated.add(path)
        unread = [(name, value.code) for name, value in members.items() if isinstance(value, FetchError)]
        if unread:  # names and codes only; each such name answers its error
            log.warning("%s %s listed %d it could not read: %s", source, printable(path), len(unread),
                        ", ".join(f"{printable(name)} ({code})" for name, code in unread[:5])
                        + (", ..." if len(unread) > 5 else ""))
        if getattr(outcome, "truncated", False):
            if first:
                log.warning("%s %s holds more than its max: %d (config.yaml line %d): the rest are not cached and "
                            "read as 404; raise max: or narrow the %s", source,
                            f"path {printable(path)}" if source == "parameters" else printable(path),
                            group.item.listing.max, group.item.line,
                            "path" if source == "parameters" else "filter")
            if self._metrics is not None:
                self._metrics.count(source, "PathMaxReached")
        return settle

    def _drop_gone(self, entries: list, now: float) -> None:
        """Drop member entries that hold nothing servable and wait for nothing: their name is not under the
        path any more (or never was). Bounded memory whatever names are read under a path."""
        with self._lock:
            for entry in entries:
                key = member_key(entry.item)
                if (entry.item.member_of is not None and entry.pending is None and not entry.servable(now)
                        and self._entries.get(key) is entry):
                    del self._entries[key]
