"""Marks every test by the folder it lives in, so `-m unit` and friends select by cost."""

from pathlib import Path

import pytest

_MARKS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "e2e": pytest.mark.e2e,
    "faults": pytest.mark.faults,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            area = Path(item.path).relative_to(root).parts[0]
        except ValueError:
            continue
        mark = _MARKS.get(area)
        if mark is not None:
            item.add_marker(mark)
