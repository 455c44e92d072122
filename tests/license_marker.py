"""Pytest plugin: `@pytest.mark.license("opt-175b-license")` runs a test only when that license is accepted.

Acceptance is what the library itself reads, `LTR_PREDICTORS_ACCEPT_LICENSES` (comma-separated ids); otherwise the
test is skipped with the license named in the reason. The session summary lists the licenses that tests exercised
and those that were skipped, so a green run says which terms it covered.
"""

from __future__ import annotations

from collections import Counter

import pytest

from ltr_predictors.licensing.terms import ACCEPT_ENV, KNOWN_LICENSES, accepted_licenses

_EXERCISED: Counter[str] = Counter()
_SKIPPED: Counter[str] = Counter()
_ACCEPTED: dict[str, list[str]] = {}  # nodeid -> licenses, counted once the test body has run


def _licenses(item: pytest.Item) -> list[str]:
    ids = []
    for marker in item.iter_markers("license"):
        if len(marker.args) != 1 or not isinstance(marker.args[0], str):
            raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.license('<license id>')")
        ids.append(marker.args[0].lower())
    return ids


def pytest_runtest_setup(item: pytest.Item) -> None:
    needed = _licenses(item)
    missing = [lid for lid in needed if lid not in accepted_licenses()]
    if missing:
        _SKIPPED.update(missing)
        names = ", ".join(f"{lid} ({KNOWN_LICENSES[lid].name})" if lid in KNOWN_LICENSES else lid for lid in missing)
        pytest.skip(f"touches weights under {names}: set {ACCEPT_ENV}={','.join(missing)} to accept and run it")
    _ACCEPTED[item.nodeid] = needed


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _EXERCISED.update(_ACCEPTED.pop(report.nodeid, []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (_EXERCISED or _SKIPPED):
        return
    terminalreporter.section("licenses")
    for lid, count in sorted(_EXERCISED.items()):
        terminalreporter.write_line(f"exercised {lid}: {count} test(s) ran under this license")
    for lid, count in sorted(_SKIPPED.items()):
        terminalreporter.write_line(f"not accepted {lid}: {count} test(s) skipped (set {ACCEPT_ENV}={lid})")
