"""The report endpoints refuse a read model in the storage layout of an earlier release (503, with
what to do) instead of answering from the half of it this code reads."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException

from attune_reporting.deps import report_source


def request_over(legacy: bool) -> Any:
    class Active:
        async def store(self) -> Any:
            return SimpleNamespace(legacy=legacy)

    deps = SimpleNamespace(active=Active(), reports=object())
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(service=SimpleNamespace(deps=deps))))


async def test_reports_are_served_from_a_database_in_the_current_layout() -> None:
    request = request_over(legacy=False)
    assert await report_source(request) is request.app.state.service.deps.reports


async def test_a_database_in_the_earlier_layout_answers_503_naming_the_rebuild() -> None:
    with pytest.raises(HTTPException) as raised:
        await report_source(request_over(legacy=True))
    assert raised.value.status_code == 503
    assert "attune reporting rebuild" in str(raised.value.detail)
