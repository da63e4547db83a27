"""The API's lean entry point (helios_pipeline/api/serve.py): what the serving process
imports, and the command the CLI execs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helios_pipeline.api.serve import lean_command

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from helios_pipeline.api.serve import main  # noqa: F401
from helios_pipeline.api.app import create_app
from ingest_services.settings import ApiSettings, load_settings
create_app(load_settings(ApiSettings, serving_path=sys.argv[1]))
heavy = ("typer", "click", "rich", "dagster", "confluent_kafka", "grpc", "pandas", "pyarrow",
         "numpy")  # numpy + pyarrow: ~40 MiB of the API's 150 MiB budget
print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
"""


def test_the_api_process_does_not_import_the_cli_or_dagster(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "none.duckdb")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "HELIOS_HOME": str(tmp_path),
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_lean_command_caps_malloc_arenas_unless_set(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    argv, env = lean_command(8123)
    assert argv[1:] == ["-m", "helios_pipeline.api.serve", "--port", "8123"]
    assert env["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    argv, env = lean_command(None)
    assert "--port" not in argv and env["MALLOC_ARENA_MAX"] == "8"


def test_a_bad_setting_is_one_line_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "helios_pipeline.api.serve"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "HELIOS_HOME": str(tmp_path),
                              "HELIOS_API_PORT": "0", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "HELIOS_API_PORT" in out.stderr, out.stderr
