"""A stand-in for vLLM's `PriorityRequestQueue` (same heap, same removal) when vLLM is not installed."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any


class HeapRequestQueue:
    def __init__(self) -> None:
        self._heap: list[Any] = []

    def add_request(self, request: Any) -> None:
        heapq.heappush(self._heap, request)

    def remove_requests(self, requests: Iterable[Any]) -> None:
        gone = requests if isinstance(requests, set) else set(requests)
        self._heap = [r for r in self._heap if r not in gone]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
