"""Installs that work without ``make``: the build generates the gRPC stubs from proto/.

As a new user would: build the wheel (isolated, so the build requirements must be declared)
from a clean copy of the sources, install it into a fresh virtual environment, and start
the profile service from that environment's ``helios`` against a real redis-server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helios_pipeline.stack import probes
from ingest_services.profiles.seed import generate, user_id

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GEN = "ingest_services/profiles/generated"
STUBS = {"__init__.py", "user_profile_pb2.py", "user_profile_pb2.pyi", "user_profile_pb2_grpc.py"}


def run(*argv: str | Path, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, **kw)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def generated_in(names: list[str]) -> set[str]:
    return {n.rsplit("/", 1)[1] for n in names if n.startswith(f"{GEN}/")}


def fresh_venv(venv: Path) -> tuple[Path, Path]:
    """A new virtual environment without the project: its python and site-packages.

    The runtime dependencies come from this test's venv through a plain path line, after
    the new venv's own site-packages (.pth files there, such as the editable install of the
    work tree, are not processed, so the work tree never shadows what is installed here).
    """
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                .stdout.strip())
    (site / "zz_helios_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return py, site


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """The project as a fresh clone has it (tracked and new files, nothing ignored), plus
    stale stubs where an old checkout or an old build would have left them."""
    src = tmp_path_factory.mktemp("clone") / "helios"
    files = run("git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                "--exclude-standard").stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():  # skip files deleted in the work tree
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    assert not (src / GEN).exists()
    for stale in (src / GEN, src / "build" / "lib" / GEN):
        stale.mkdir(parents=True)
        (stale / "old_service_pb2.py").write_text("raise ImportError('stale stub')\n")
    return src


def test_generated_stubs_are_not_in_git():
    assert run("git", "-C", REPO, "ls-files", GEN).stdout == ""
    for name in sorted(STUBS):
        ignored = subprocess.run(["git", "-C", REPO, "check-ignore", "-q", f"{GEN}/{name}"])
        assert ignored.returncode == 0, f"{GEN}/{name} is not ignored by git"


def test_sdist_carries_the_protos_and_builds_a_wheel_with_stubs(sources, tmp_path):
    pytest.importorskip("grpc_tools")  # the dev extras: build without isolation below
    sdist = run(sys.executable, "-c",
                f"from setuptools import build_meta as b; print(b.build_sdist({str(tmp_path)!r}))",
                cwd=sources).stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    assert {"proto/user_profile.proto", "setup.py", "pyproject.toml"} <= set(names)
    assert not [n for n in names if n.startswith(GEN)]  # generated at build time only
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", tmp_path, tmp_path / sdist)
    (wheel,) = tmp_path.glob("helios-*.whl")
    assert generated_in(zipfile.ZipFile(wheel).namelist()) == STUBS


def test_editable_install_generates_the_stubs_in_the_source_tree(sources, tmp_path):
    src = shutil.copytree(sources, tmp_path / "helios")
    shutil.rmtree(src / GEN)
    py, _ = fresh_venv(tmp_path / "venv")
    run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", "-e", src,
        timeout=300)
    assert {p.name for p in (src / GEN).iterdir() if p.is_file()} == STUBS
    where = run(py, "-c", "import ingest_services.profiles.generated."
                "user_profile_pb2_grpc as g; print(g.__file__)", cwd=tmp_path,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout.strip()
    assert Path(where) == src / GEN / "user_profile_pb2_grpc.py"


def test_wheel_installs_into_a_fresh_venv_and_serves_profiles(sources, tmp_path, redis_server):
    started = time.monotonic()
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist",
        sources, timeout=300)  # build isolation: proves [build-system].requires
    (wheel,) = (tmp_path / "dist").glob("helios-*.whl")
    build_s = time.monotonic() - started
    names = zipfile.ZipFile(wheel).namelist()
    assert generated_in(names) == STUBS  # fresh stubs, no stale ones
    assert not [n for n in names if n.startswith(("tests/", "build/", "proto/"))]
    # the dashboard ships as package data (no build step on the user's machine)
    assert {"helios_pipeline/api/static/index.html", "helios_pipeline/api/static/app.js",
            "helios_pipeline/api/static/vendor/chart.umd.min.js"} <= set(names)

    venv = tmp_path / "venv"
    py, site = fresh_venv(venv)
    run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q",
        wheel)
    neutral = tmp_path / "run"
    neutral.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HELIOS_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = run(py, "-c", "import ingest_services, ingest_services.profiles.generated."
                "user_profile_pb2_grpc as g; print(ingest_services.__file__); print(g.__file__)",
                cwd=neutral, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    port, metrics_port = probes.free_port(), probes.free_port()
    env.update(HELIOS_REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
               HELIOS_PROFILE_PORT=str(port), HELIOS_PROFILE_METRICS_PORT=str(metrics_port),
               HELIOS_BIND_HOST="127.0.0.1", HELIOS_HOME=str(neutral / ".helios"))
    log = neutral / "profiles.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([venv / "bin" / "helios", "serve", "profiles"], cwd=neutral,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        # the client side uses this venv's stubs; the server runs the wheel's
        from ingest_services.profiles.generated import user_profile_pb2 as pb
        from ingest_services.profiles.generated import user_profile_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    resp = health.Check(health_pb2.HealthCheckRequest(
                        service="helios.userprofile.UserProfileService"), timeout=1)
                except grpc.RpcError:
                    return False
                return resp.status == health_pb2.HealthCheckResponse.SERVING

            assert probes.wait_until(serving, 30), log.read_text()
            stub = pb_grpc.UserProfileServiceStub(channel)
            resp = stub.GetUserProfile(pb.GetUserProfileRequest(user_id=user_id(5)), timeout=5)
            assert resp.profile == next(generate(6, seed=7, start=5))  # conftest seeded it
            with pytest.raises(grpc.RpcError) as err:
                stub.GetUserProfile(pb.GetUserProfileRequest(user_id="nobody"), timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()  # graceful stop on SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"wheel build {build_s:.1f}s, whole test {time.monotonic() - started:.1f}s")
