"""Build step: generate the gRPC stubs from proto/ while the package is built.

All metadata lives in pyproject.toml; this file only adds the stub generation to
``build_py`` so wheels, sdists (built into wheels) and editable installs all ship
``ingest_services.profiles.generated`` without a separate ``make proto``. The stubs are
never committed (see .gitignore). ``grpcio-tools`` is a [build-system] requirement.

- wheel / sdist -> wheel: stubs are generated fresh into the build directory (the
  source tree's copy, if any, is excluded from the package list, so no stale files ship).
- editable (``pip install -e .``): stubs are generated into the source tree, which is
  what the editable install imports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

ROOT = Path(__file__).resolve().parent
PROTOS = ("user_profile.proto",)
GEN_PACKAGE = "ingest_services.profiles.generated"
GEN_DIR = Path(*GEN_PACKAGE.split("."))
OUTPUTS = ("__init__.py", *(f"{Path(p).stem}{suffix}" for p in PROTOS
                             for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))


def generate(root: Path) -> list[Path]:
    """Write the stubs under ``root`` (``root/ingest_services/profiles/generated``).

    Generated in a scratch directory first and moved in file by file, so a process
    importing the stubs from ``root`` never sees a half-written module.
    """
    import grpc_tools
    from grpc_tools import protoc

    proto_dir = ROOT / "proto"
    includes = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    target = root / GEN_DIR
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        argv = ["grpc_tools.protoc", f"-I{GEN_DIR.as_posix()}={proto_dir}", f"-I{includes}",
                f"--python_out={scratch}", f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}", *(str(proto_dir / p) for p in PROTOS)]
        if protoc.main(argv) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed: {' '.join(argv)}")
        made = Path(scratch) / GEN_DIR
        (made / "__init__.py").touch()
        for name in OUTPUTS:
            os.replace(made / name, target / name)
    return [target / name for name in OUTPUTS]


class build_py(_build_py):
    """``build_py`` that also generates the gRPC stubs."""

    def run(self) -> None:
        super().run()  # returns early in editable mode
        if self.editable_mode:
            generate(ROOT)
        else:
            shutil.rmtree(Path(self.build_lib) / GEN_DIR, ignore_errors=True)  # no stale files
            made = generate(Path(self.build_lib))
            self.byte_compile([str(p) for p in made if p.suffix == ".py"])

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode),
                *(str(Path(self.build_lib) / GEN_DIR / n) for n in OUTPUTS)]

    def get_output_mapping(self) -> dict[str, str]:
        # For editable installs in strict mode (a link tree built from this mapping).
        mapping = super().get_output_mapping()
        for name in OUTPUTS:
            mapping[str(Path(self.build_lib) / GEN_DIR / name)] = str(ROOT / GEN_DIR / name)
        return mapping


setup(cmdclass={"build_py": build_py})
