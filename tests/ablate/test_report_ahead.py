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
