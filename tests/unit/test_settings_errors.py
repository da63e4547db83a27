"""Every setting with a wrong value stops every ``helios`` command with one line that names
the variable and says how to fix it, exit code 2, no traceback.

The fields are iterated from the settings classes themselves, so a new setting is covered
the day it is added; a wrong *type* exists for every field whose type is not free text
(int, float, bool, a fixed set of choices), and an out-of-range value for every bounded one.
The commands run in-process through the real entry point (``helios_pipeline.cli.main``),
so the whole matrix costs a second rather than a process start per case.
"""

from __future__ import annotations

import os
import sys
import types
from datetime import date
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import annotated_types
import pytest
from pydantic import SecretStr

from helios_pipeline import cli
from ingest_services.settings import SERVICE_SETTINGS, ApiSettings, Settings, get_settings

FREE_TEXT = (str, Path, SecretStr)  # any text is a valid value: no wrong type to try


def base_type(annotation: object) -> object:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return base_type(rest[0])
    return annotation


def wrong_values(name: str, group: type = Settings) -> list[str]:
    """Values of ``name`` that must be refused: a wrong type and, if bounded, out of range."""
    field = group.model_fields[name]
    tp = base_type(field.annotation)
    out: list[str] = []
    if get_origin(tp) is Literal:
        out.append("no-such-choice")
    elif tp is bool:
        out.append("maybe")
    elif tp is date:
        out.append("yesterday")
    elif tp in (int, float):
        out.append("not-a-number")
        for meta in field.metadata:
            if isinstance(meta, annotated_types.Ge):
                out.append(str(meta.ge - 1))
            elif isinstance(meta, annotated_types.Gt):
                out.append(str(meta.gt))
            elif isinstance(meta, annotated_types.Le):
                out.append(str(meta.le + 1))
    else:
        assert tp in FREE_TEXT, f"{name}: type {tp} has no wrong value in this test; add one"
    return out


CASES = [(name, value) for name in Settings.model_fields for value in wrong_values(name)]
# commands that read every setting before doing anything (so none of them starts anything)
COMMANDS = [["status"], ["down"], ["logs", "gateway"], ["audit"], ["load"], ["export"],
            ["profiles", "seed"], ["up"], ["demo"]]


def run(monkeypatch, capsys, tmp_path: Path, env: dict[str, str], args: list[str]
        ) -> tuple[int, str]:
    for var in [v for v in os.environ if v.startswith("HELIOS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HELIOS_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not wrap the one line
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if args == ["export"]:
        args = ["export", "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["helios", *args])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as info:
            cli.main()
    finally:
        get_settings.cache_clear()
    captured = capsys.readouterr()
    return info.value.code, captured.out + captured.err


def test_every_typed_setting_has_a_case():
    named = {n for n, _ in CASES}
    typed = {n for n, f in Settings.model_fields.items()
             if base_type(f.annotation) not in FREE_TEXT}
    assert named == typed and len(named) > 40


# each case through one command (in turn), and the first case through every command: every
# command and every setting are covered, at a ninth of the cost of the full matrix
RUNS = [(n, v, COMMANDS[i % len(COMMANDS)]) for i, (n, v) in enumerate(CASES)] + \
    [(*CASES[0], args) for args in COMMANDS[1:]]


@pytest.mark.parametrize(("name", "value", "args"), RUNS,
                         ids=[f"{' '.join(a)}:{n}={v}" for n, v, a in RUNS])
def test_a_wrong_setting_is_one_line_naming_it_exit_2(monkeypatch, capsys, tmp_path, name,
                                                      value, args):
    var = f"HELIOS_{name.upper()}"
    code, output = run(monkeypatch, capsys, tmp_path, {var: value}, args)
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, (args, output)
    assert len(lines) == 1, (args, output)
    assert "Traceback" not in output
    assert lines[0].startswith("error: "), lines
    assert f"{var}={value!r}".lower() in lines[0].lower(), lines  # LOG_LEVEL: upper
    assert "fix:" in lines[0], lines[0]


@pytest.mark.parametrize("service", [*SERVICE_SETTINGS, "api"])
def test_serve_refuses_its_own_group_s_wrong_settings(monkeypatch, capsys, tmp_path, service):
    group = ApiSettings if service == "api" else SERVICE_SETTINGS[service]
    cases = [(n, v) for n in group.model_fields for v in wrong_values(n, group)][:40]
    assert cases
    for name, value in cases:
        code, output = run(monkeypatch, capsys, tmp_path, {f"HELIOS_{name.upper()}": value},
                           ["serve", service])
        lines = [ln for ln in output.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1, (name, value, output)
        assert f"HELIOS_{name.upper()}" in lines[0]
