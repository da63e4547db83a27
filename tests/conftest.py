"""Shared test setup: where the shared OpenRTB examples live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = Path(
    os.environ.get("HELIOS_OPENRTB_EXAMPLES", REPO.parent / "shared" / "openrtb-examples" / "valid")
)


@pytest.fixture(scope="session")
def examples() -> list[Path]:
    files = sorted(EXAMPLES.glob("*.json"))
    assert files, f"no OpenRTB examples in {EXAMPLES} (is ../shared beside the repo?)"
    return files


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection on a live `helios up` (kill -9 under load); "
                   "alone: pytest -m faults tests/integration")
