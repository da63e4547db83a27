"""`helm test`: the gateway is ready and accepts a real OpenRTB request; the API is alive.

Run in the Helios image by templates/tests/test-bid.yaml; HELIOS_TEST_GATEWAY and
HELIOS_TEST_API are the Services' URLs, HELIOS_TEST_REQUEST the OpenRTB file to post;
HELIOS_TEST_API_KEYS the gateway's keys when auth is on (the first one is sent).
Exit 0 when every check passed, 1 with a line saying which did not.
"""

import json
import os
import sys
from pathlib import Path

import httpx

gateway = os.environ["HELIOS_TEST_GATEWAY"].rstrip("/")
api = os.environ.get("HELIOS_TEST_API", "").rstrip("/")
body = Path(os.environ["HELIOS_TEST_REQUEST"]).read_bytes()
sent = json.loads(body)
keys = [k.strip() for k in os.environ.get("HELIOS_TEST_API_KEYS", "").split(",") if k.strip()]
auth = {"x-api-key": keys[0]} if keys else {}


def fail(what: str, resp: httpx.Response) -> None:
    print(f"FAIL {what}: {resp.status_code} {resp.text[:500]}", file=sys.stderr)
    sys.exit(1)


with httpx.Client(timeout=10) as http:
    r = http.get(f"{gateway}/readyz")
    if r.status_code != 200:
        fail(f"GET {gateway}/readyz (the gateway cannot reach the broker or topic)", r)
    print(f"ok GET {gateway}/readyz: {r.json()}")
    r = http.post(f"{gateway}/bid", content=body,
                  headers={"content-type": "application/json", **auth})
    if r.status_code != 202 or r.json().get("id") != sent["id"] or not r.json().get("rid"):
        fail(f"POST {gateway}/bid (expected 202 with id {sent['id']!r} and a rid)", r)
    print(f"ok POST {gateway}/bid: accepted as rid {r.json()['rid']}")
    if api:
        r = http.get(f"{api}/healthz")
        if r.status_code != 200:
            fail(f"GET {api}/healthz", r)
        print(f"ok GET {api}/healthz")
print("helm test passed")
