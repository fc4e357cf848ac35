"""The report's imports, paid on the driver once no trial waits to start (ablate.report_ahead)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ablate.report_ahead import ReportAhead


def test_the_report_is_imported_ahead_once_every_trial_started_and_a_slot_is_free(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr("reports.importance.evaluators", lambda: calls.append(1))
    ahead = ReportAhead(planned=3)

    def trials(*statuses: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(status=s) for s in statuses]

    ahead.on_trial_complete(0, trials("TERMINATED", "RUNNING"), None)  # the third not created yet
    ahead.on_trial_complete(0, trials("TERMINATED", "RUNNING", "PENDING"), None)  # it takes the slot
    assert calls == []
    ahead.on_trial_error(0, trials("TERMINATED", "ERROR", "RUNNING"), None)  # the rest run: a core free
    ahead.on_trial_complete(0, trials("TERMINATED", "ERROR", "TERMINATED"), None)
    assert calls == [1]  # once


def test_a_failed_import_ahead_never_fails_the_trial_whose_end_it_follows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception in a callback's on_trial_complete made Tune fail and retry a finished trial (seen: an
    import error there, and a data-parallel trial's retry then died on a checkpoint its Train run no
    longer had). The report says its own error at the end; nothing is raised here."""
    def broken() -> None:
        raise ImportError("cannot import name 'x'")

    monkeypatch.setattr("reports.importance.evaluators", broken)
    ahead = ReportAhead(planned=1)
    ahead.on_trial_complete(0, [SimpleNamespace(status="TERMINATED")], None)
    assert ahead.done
