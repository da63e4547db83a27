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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--faults", action="store_true",
                     help="also run the fault-injection tests (`make test-faults`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection on live `helios up` stacks (~3 min); run by "
                   "`make test-faults` (pytest --faults), deselected otherwise")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fault tests start several whole stacks: `make test-faults`, not `make test`."""
    if config.getoption("--faults"):
        return
    drop = [item for item in items if item.get_closest_marker("faults")]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]
