"""Closed-loop HTTP load with wrk (Debian's ``wrk`` package), where the client must not be
measured together with the server.

Why not Python threads: on a 2-core machine the load generator shares the cores with the
server it measures. Eight httpx client threads contend for their own process's GIL and
spend about as much CPU per call as the API does, and both show in the p50 (bench/README.md,
"The load generator"). wrk is C, one epoll thread; its CPU per call is a few per cent of the
API's.

``closed_loop`` asks each path of a list once, in order, over ``concurrency`` keep-alive
connections (each sends its next request when its answer arrives) and stops when as many
answers as paths have come back, so a list of distinct paths is never answered from the
API's answer cache. The result has the shape of bench.api.summary's.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "apt-get install wrk"

# Lua run by wrk: __PATHS__ is replaced by the path list's file name (a Lua string).
SCRIPT = r"""
local paths, sent, got = {}, 0, 0
for line in io.lines(__PATHS__) do paths[#paths + 1] = line end
request = function()
  sent = sent + 1
  return wrk.format("GET", paths[(sent - 1) % #paths + 1])
end
response = function(status, headers, body)
  got = got + 1
  if got == #paths then
    io.write("HELIOS_WRK_DONE\n"); io.flush()  -- the caller interrupts wrk's timer (SIGINT)
    wrk.thread:stop()
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HELIOS_WRK n=%d p50_us=%d p99_us=%d max_us=%d duration_us=%d status=%d socket=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def closed_loop(base_url: str, paths: list[str], concurrency: int, cap_s: float) -> dict:
    """``paths`` asked once each at ``concurrency`` (or until ``cap_s`` seconds): n, p50,
    p99, max, answers per second, and ``errors`` (non-2xx answers, socket errors)."""
    if not paths:
        raise ValueError("paths is empty: give at least one path to ask")
    with tempfile.TemporaryDirectory(prefix="helios-wrk-") as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "load.lua"
        script.write_text(SCRIPT.replace("__PATHS__", f'"{listing}"'))
        proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(cap_s))}s", "--timeout", "60s",
             "-s", str(script), base_url.rstrip("/") + "/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        try:
            assert proc.stdout is not None
            for ln in proc.stdout:  # wrk would sleep out its -d even when its thread stopped
                lines.append(ln)
                if ln.startswith("HELIOS_WRK_DONE"):
                    proc.send_signal(signal.SIGINT)  # wrk then prints its summary and exits
            proc.wait()
        finally:
            if proc.poll() is None:  # interrupted here (Ctrl-C): never leave wrk running
                proc.kill()
                proc.wait()
        output = "".join(lines)
    line = next((ln for ln in output.splitlines() if ln.startswith("HELIOS_WRK ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {output.strip()[:300]}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    errors = f["status"] + f["socket"]
    if f["n"] <= errors:
        raise RuntimeError(f"every call failed ({errors} errors) asking {paths[0]} ...")
    out = {"n": f["n"] - errors, "p50_ms": round(f["p50_us"] / 1000, 3),
           "p99_ms": round(f["p99_us"] / 1000, 3), "max_ms": round(f["max_us"] / 1000, 3),
           "per_s": round(f["n"] / max(f["duration_us"] / 1e6, 1e-6), 1)}
    if errors:
        out["errors"] = errors
    return out
