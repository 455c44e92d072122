"""Pytest plugin: `@pytest.mark.hub` tests reach the real huggingface.co, and skip with a reason when it is offline.

For those tests only, the conftest socket guard is lifted; they pass `endpoint=HUB` explicitly, since the session
points `HF_ENDPOINT` at the loopback mirror. CI has no route to huggingface.co, so they skip there; run them with
`pytest -m hub` on a machine with a network.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

HUB = "https://huggingface.co"
_probe: dict[str, str | None] = {}


def _unreachable() -> str | None:
    """None when huggingface.co:443 accepts a connection, else why not (checked once per session)."""
    if "reason" not in _probe:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
            _probe["reason"] = None
        except OSError as exc:
            _probe["reason"] = f"huggingface.co unreachable ({type(exc).__name__}: {exc}); run `pytest -m hub` online"
    return _probe["reason"]


@pytest.fixture(autouse=True)
def _online_for_hub_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("hub") is not None:
        from conftest import real_connect

        monkeypatch.setattr(socket.socket, "connect", real_connect)
        reason = _unreachable()
        if reason:
            pytest.skip(reason)
    yield
