"""`--shard i/n`: a deterministic share of a list, so that n machines (or processes) each take a
disjoint part of the same work and together cover all of it.

Shard i of n is every n-th item of the sorted list, starting at the i-th: the same on every
machine that sees the same items, and balanced to within one item (interleaving also spreads
any runs of long files across the shards).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= i < n, e.g. 0/4 ... 3/4")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/n' -> Shard(i, n); ValueError with the fix otherwise."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"expected i/n (shard i of n, 0-based), e.g. 0/4; got {text!r}") from None
        return cls(index, count)

    def take(self, items: Iterable[T]) -> list[T]:
        """This shard's items, in sorted order."""
        return sorted(items)[self.index :: self.count]

    @property
    def name(self) -> str:
        """A file-name form: '0-of-4'."""
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
