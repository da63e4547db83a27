"""The analytics API's own entry point: ``helios serve api`` execs this module.

Why a separate module: the ``helios`` command imports typer, click and rich before it knows
which service to run; in the API process they would stay resident for its whole life, and
what the serving process holds should be what serving needs (its RSS target is 150 MiB,
issue #7; measured, these imports are only ~2 MiB of it: bench/README.md). The CLI checks
the settings (a bad ``HELIOS_*`` value fails there, one line) and then replaces itself with
``python -m helios_pipeline.api.serve`` (same PID, so whoever started it stops it by that
PID), whose imports are uvicorn, FastAPI, DuckDB, prometheus_client and the settings.

It also caps glibc's malloc arenas (``MALLOC_ARENA_MAX``, read by glibc at process start,
hence set by the CLI before the exec): threads get arenas of their own, which keep freed
memory in the process's RSS. With the API's four handler threads no effect was measurable
(152 vs 154 MiB); it bounds the worst case.
"""

from __future__ import annotations

import argparse
import os
import sys

# Set by the CLI before exec when the caller did not choose a value: glibc reads it at start.
MALLOC_ARENA_MAX = "2"


def lean_command(port: int | None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment the CLI execs for ``helios serve api``."""
    argv = [sys.executable, "-m", "helios_pipeline.api.serve"]
    if port:
        argv += ["--port", str(port)]
    env = dict(os.environ)
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    return argv, env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="helios serve api",
                                 description="The analytics API and dashboard (docs/api.md).")
    ap.add_argument("--port", type=int, default=None,
                    help="port to listen on [HELIOS_API_PORT]")
    args = ap.parse_args(argv)

    from ingest_services.settings import ApiSettings, SettingsError, get_settings

    try:
        s = get_settings(ApiSettings)
    except SettingsError as exc:  # one line, exit 2, like the CLI
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from ingest_services.common.logs import setup_logging

    setup_logging(s.log_level)
    # ws="none": the API has no WebSocket route, and uvicorn would import ``websockets``
    # for nothing (2.5 MiB of RSS, measured)
    uvicorn.run("helios_pipeline.api.app:create_app", factory=True, host=s.bind_host,
                port=args.port or s.api_port, access_log=False, log_config=None,
                timeout_graceful_shutdown=10, ws="none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
