"""Serialised items of the application list, each kept with the digest of the row it was made from.

A change to one application bumps its team's revision, so the whole page of the list is rebuilt
(``page_cache``); the rows of the other applications are read again but are the same, and so is what they
serialise to. An item is a pure function of its row (``views.application_item`` then the model's dump), so an
item whose row has the same digest (``adapters.applications.PageEntry``: every column it shows) is reused
as it is, and the page is the concatenation of its items. Only the rows that changed are decoded,
validated and dumped again: the rebuild after a change costs the statement and the changed rows.

Bounded by bytes, least recently used first out; one entry per application (a newer row replaces it).
"""

from __future__ import annotations

from collections import OrderedDict


class ItemCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()  # id -> (row digest, item)
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, digest: bytes) -> bytes | None:
        """The item made from the row of this digest, or None (not kept, or made from another row)."""
        kept = self._items.get(key)
        if kept is None or kept[0] != digest:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return kept[1]

    def put(self, key: str, digest: bytes, item: bytes) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        if len(item) > self.max_bytes // 4:
            return  # none kept when caching is off (0 bytes), nor one too large to be worth it
        self._items[key] = (digest, item)
        self.size += len(item)
        while self.size > self.max_bytes and self._items:
            _, (_, dropped) = self._items.popitem(last=False)
            self.size -= len(dropped)
