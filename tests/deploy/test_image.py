"""The image's inputs, checked without a Docker engine (none on these machines): every file
the Dockerfile copies is in the build context (.dockerignore applied as Docker applies it),
every command it or the charts run is a real entry point, the wheel it installs builds
from that context, and the final stage runs as a non-root user with no compiler."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.deploy.conftest import REPO, documents, pod_specs, render

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|python3?-dev|"
                       r"libc6?-dev|cargo|rustc)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages): instructions with continuation lines joined."""
    lines, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif op == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        else:
            stages[-1].instructions.append((op, rest.strip()))
    return args, stages


ARGS, STAGES = parse_dockerfile((REPO / "Dockerfile").read_text())
FINAL = STAGES[-1]


def dockerignore_patterns() -> list[tuple[bool, str]]:
    out = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!")))  # Docker cleans "proto/" to "proto"
        out.append((negate, pattern))
    return out


def _match(pattern: str, path: str) -> bool:
    if "**" in pattern:
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        return re.fullmatch(regex, path) is not None
    return fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for negate, pattern in dockerignore_patterns():
        if any(_match(pattern, p) for p in prefixes):
            included = negate
    return included


def copies(stage: Stage) -> list[tuple[dict[str, str], list[str], str]]:
    out = []
    for op, rest in stage.instructions:
        if op in ("COPY", "ADD"):
            words = shlex.split(rest)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            out.append((flags, paths[:-1], paths[-1]))
    return out


def exec_form(stage: Stage, op: str) -> list[str] | None:
    found = [rest for o, rest in stage.instructions if o == op]
    if not found:
        return None
    value = yaml.safe_load(found[-1])
    assert isinstance(value, list), f"{op} must use the exec form (signals reach the process)"
    return value


def console_scripts() -> dict[str, str]:
    """Console scripts installed by the project and its runtime dependencies."""
    return {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}


# ------------------------------------------------------------------ the Dockerfile
def test_two_stages_slim_python_base():
    assert len(STAGES) == 2 and STAGES[0].name == "builder"
    assert FINAL.base == STAGES[0].base == "python:3.11-slim"
    requires = PYPROJECT["project"]["requires-python"]
    assert requires == ">=3.11"


def test_every_copy_source_is_in_the_build_context():
    checked = 0
    for stage in STAGES:
        for flags, sources, _dest in copies(stage):
            assert "from" not in flags, "the final stage mounts the builder's wheels instead"
            for src in sources:
                path = REPO / src
                assert path.exists(), f"COPY {src}: no such file in the repository"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                kept = [p for p in files if in_context(p.relative_to(REPO).as_posix())]
                assert kept, f"COPY {src}: .dockerignore leaves nothing of it in the context"
                checked += 1
    assert checked >= 6
    # what the build needs is all copied: the packages pyproject installs and setup.py's protos
    copied = {s.rstrip("/") for _f, srcs, _d in copies(STAGES[0]) for s in srcs}
    packages = {p.split("*")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    assert packages | {"proto", "setup.py", "pyproject.toml", "README.md"} <= copied


def test_dockerignore_keeps_secrets_and_state_out():
    for path in (".venv/bin/python", ".helios/stack.json", ".git/config", "tests/conftest.py",
                 "ingest_services/profiles/generated/user_profile_pb2.py",
                 "helios_pipeline/__pycache__/cli.cpython-311.pyc", "bench/results/x.json"):
        assert not in_context(path), path
    for path in ("pyproject.toml", "proto/user_profile.proto", "helios_pipeline/cli.py",
                 "helios_pipeline/api/static/index.html"):
        assert in_context(path), path


def test_final_stage_installs_the_builders_wheels_only():
    runs = [rest for op, rest in FINAL.instructions if op == "RUN"]
    [install] = [r for r in runs if "pip install" in r]
    assert "--no-index" in install and "--find-links=/wheels" in install
    mount = re.search(r"--mount=(\S+)", install).group(1)
    opts = dict(kv.split("=", 1) for kv in mount.split(","))
    assert opts["from"] == STAGES[0].name and opts["source"] == "/wheels"
    builder_runs = " ".join(rest for op, rest in STAGES[0].instructions if op == "RUN")
    assert "pip wheel --wheel-dir /wheels ." in builder_runs


def test_final_stage_non_root_and_without_compilers():
    user = [rest for op, rest in FINAL.instructions if op == "USER"]
    assert user, "the final stage must set USER"
    uid, _, gid = user[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    for op, rest in FINAL.instructions:
        if op == "RUN":
            assert not COMPILERS.search(rest), f"compiler or build tool in the final stage: {rest}"
            assert "apt-get install" not in rest and "apk add" not in rest
    # the chart runs every pod as this uid (non-root, verified by the kubelet)
    for _name, spec in pod_specs(documents(render({}))):
        assert spec["securityContext"]["runAsUser"] == int(uid)
        assert spec["securityContext"]["runAsGroup"] == int(gid)
    env = " ".join(rest for op, rest in FINAL.instructions if op == "ENV")
    assert "MALLOC_ARENA_MAX=2" in env and "HELIOS_BIND_HOST=0.0.0.0" in env
    assert "HELIOS_HOME=/tmp/" in env  # writable with a read-only root (an emptyDir /tmp)


# ------------------------------------------------------------------ commands
def test_every_command_is_a_real_entry_point():
    """CMD, the chart's containers and the Dagster code server run installed console scripts
    (or python on a file the chart ships), and `helios serve X` names a real service."""
    from ingest_services.runner import SERVICES

    scripts = console_scripts()
    project = PYPROJECT["project"]["scripts"]
    assert scripts["helios"] == project["helios"]
    commands = [exec_form(FINAL, "CMD")]
    # no ENTRYPOINT: a pod's `command` (helm/helios) or `args` (the Dagster chart's code
    # server) is then the whole argv
    assert exec_form(FINAL, "ENTRYPOINT") is None
    objs = documents(render({}))
    for _name, spec in pod_specs(objs):
        commands += [c["command"] for c in spec["containers"]]
    dagster_values = yaml.safe_load((REPO / "helm" / "dagster-values.yaml").read_text())
    for dep in dagster_values["dagster-user-deployments"]["deployments"]:
        commands.append(["dagster", "code-server", "start", *dep["codeServerArgs"]])
    seen = set()
    for argv in commands:
        exe = argv[0]
        seen.add(exe)
        if exe == "python":
            # the hook and test scripts are chart files (their own tests run them live)
            assert argv[1] == "-c" or argv[1].startswith("/helm-test/"), argv
            continue
        assert exe in scripts, f"{exe}: not a console script of the image's packages"
        if exe == "helios":
            assert argv[1] == "serve" and argv[2] in (*SERVICES, "api"), argv
    assert {"helios", "dagster", "python"} <= seen


def test_cmd_services_start_their_cli():
    """`helios serve --help` and `dagster code-server start --help` run from the installed
    entry points (the image's command line, not a guess)."""
    bin_dir = Path(sys.executable).parent
    for argv in (["helios", "serve", "--help"], ["dagster", "code-server", "start", "--help"]):
        proc = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------ the wheel
@pytest.fixture(scope="session")
def context_wheel(tmp_path_factory) -> Path:
    """The wheel, built from exactly what the Docker build context holds (the builder stage
    copies nothing else). Offline: the build requirements come from this environment."""
    ctx = tmp_path_factory.mktemp("context") / "src"
    for _flags, sources, _dest in copies(STAGES[0]):
        for src in sources:
            path = REPO / src
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for f in files:
                rel = f.relative_to(REPO).as_posix()
                if in_context(rel):
                    (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, ctx / rel)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out)], cwd=ctx,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wheel] = out.glob("helios-*.whl")
    return wheel


def test_build_requirements_are_the_declared_ones():
    for req in PYPROJECT["build-system"]["requires"]:
        name, _, pinned = req.partition("==")
        name = name.split(">=")[0]
        version = metadata.version(name)
        assert not pinned or version == pinned, f"{name} {version} != {pinned}"


def test_wheel_builds_from_the_context(context_wheel):
    with zipfile.ZipFile(context_wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    assert "ingest_services/profiles/generated/user_profile_pb2_grpc.py" in names
    assert "helios_pipeline/definitions.py" in names
    assert "helios_pipeline/api/static/index.html" in names
    assert "helios = helios_pipeline.cli:main" in entry_points
    assert not any(n.startswith("tests/") for n in names)


def test_dagster_k8s_matches_dagster():
    """dagster-k8s 0.29.x goes with dagster 1.13.x (the same release train)."""
    deps = dict(re.match(r"([^=]+)==(.+)", d).groups()
                for d in PYPROJECT["project"]["dependencies"] if "==" in d)
    assert deps["dagster-k8s"].split(".")[2] == deps["dagster"].split(".")[2]
    assert deps["dagster-k8s"] == metadata.version("dagster-k8s")
    from dagster_k8s import K8sRunLauncher  # what dagster-values.yaml names

    assert K8sRunLauncher.__module__.startswith("dagster_k8s")
