"""A page of a list: at most `limit` items after a cursor, the cursor of the next page.

A cursor (the HTTP API's `continue`) is opaque to callers: the sort key of the last row
given, as base64url JSON. The next page is every item whose key sorts after it, so a row
added or deleted meanwhile neither repeats nor skips the others (keyset paging, as a run
store with an index on the sort key will answer it).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
SortKey = tuple[str, ...]
CURSOR_VERSION = 1
MAX_CURSOR = 4096  # characters: a key of a few names, not a document


class BadCursor(ValueError):
    """A continue token this API did not give (or one for another list)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"continue is not a token this list gave ({detail}); "
            "start again without continue, then pass the `continue` of the previous answer"
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """`items` of one page; `next` the cursor of the one after (None: this is the last);
    `total` and `counts` (per status, where the list has one) over every matching item."""

    items: list[T]
    next: str | None = None
    total: int = 0
    counts: dict[str, int] | None = None

    def dump(self, item: Callable[[T], Any]) -> dict[str, Any]:
        """The JSON answer: `items`, `total`, `counts` when known, `continue` when more."""
        out: dict[str, Any] = {"items": [item(i) for i in self.items], "total": self.total}
        if self.counts is not None:
            out["counts"] = dict(self.counts)
        if self.next is not None:
            out["continue"] = self.next
        return out


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, "after": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key in `cursor`; BadCursor if it is not one `encode_cursor` wrote."""
    if len(cursor) > MAX_CURSOR:
        raise BadCursor(f"longer than {MAX_CURSOR} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw.decode())
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        raise BadCursor("not base64url JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
        raise BadCursor("not a cursor of this version")
    after = doc.get("after")
    if not isinstance(after, list) or not after or not all(isinstance(p, str) for p in after):
        raise BadCursor("no sort key in it")
    return tuple(after)


def paginate(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    limit: int | None = None,
    cursor: str | None = None,
    descending: bool = True,
    status: Callable[[T], str] | None = None,
) -> Page[T]:
    """One page of `items`, which are sorted by `key` (descending unless told): those
    after `cursor`, at most `limit` (None: all). `status` names the field to count by."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    counts = dict(Counter(status(i) for i in items)) if status is not None else None
    rest: Sequence[T] = items
    if cursor:
        after = decode_cursor(cursor)
        if items and len(after) != len(key(items[0])):
            raise BadCursor("a key of another list")
        start = next(
            (n for n, i in enumerate(items) if (key(i) < after if descending else key(i) > after)),
            len(items),
        )
        rest = items[start:]
    chosen = list(rest if limit is None else rest[:limit])
    more = limit is not None and len(rest) > limit
    return Page(
        items=chosen,
        next=encode_cursor(key(chosen[-1])) if more and chosen else None,
        total=len(items),
        counts=counts,
    )
