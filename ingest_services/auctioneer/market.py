"""The simulated open market the auctioneer bids against.

Competing bids are log-normal (the usual choice in RTB simulation: prices are positive and
right-skewed), with a median per audience segment and media type and a diurnal factor by
hour (UTC). The random stream is keyed by (market seed, request id, imp id): replaying a
request gives the same competitors, hence the same outcome.

The stream is counter-based (:class:`HashStream`): draw block ``j`` is the BLAKE2b hash of
the key with ``j`` as salt, 8 uniforms per block. Seeding a Mersenne Twister per imp (what
this did before) cost more than the whole auction; one hash per imp does not, and it needs
no state beyond the key, so any process, any replica, any replay draws the same numbers.
Normals for the log-normal come from Box-Muller pairs.
"""

from __future__ import annotations

import hashlib
import math
import struct

# Median competing CPM (USD) per IAB tier-1 segment; unknown audiences clear lower.
SEGMENT_MEDIAN_CPM = {
    "IAB1": 0.55, "IAB2": 0.75, "IAB3": 0.80, "IAB4": 0.70, "IAB5": 0.45, "IAB6": 0.50,
    "IAB7": 0.65, "IAB8": 0.55, "IAB9": 0.45, "IAB10": 0.50, "IAB11": 0.60, "IAB12": 0.55,
    "IAB13": 0.95, "IAB14": 0.45, "IAB15": 0.50, "IAB16": 0.45, "IAB17": 0.60, "IAB18": 0.55,
    "IAB19": 0.85, "IAB20": 0.70, "IAB21": 0.65, "IAB22": 0.60, "IAB23": 0.40, "IAB24": 0.40,
    "IAB25": 0.30, "IAB26": 0.30, "unknown": 0.35,
}
MEDIA_FACTOR = {"banner": 1.0, "native": 1.3, "audio": 1.5, "video": 2.5}
SIGMA = 0.6


def hour_factor(hour: int) -> float:
    """Demand peaks in the evening (20:00 UTC, ×1.2) and bottoms out in the early morning."""
    return 1.0 + 0.2 * math.cos(2 * math.pi * (hour - 20) / 24)


_BLOCK = struct.Struct("<8Q")
_UNIT = 2.0 ** -53
_TWO_PI = 2 * math.pi


class HashStream:
    """Uniform draws in [0, 1): word ``i`` of block ``j`` = BLAKE2b(key, salt=j), top 53 bits.
    Deterministic in the key alone (no process state, no PYTHONHASHSEED)."""

    __slots__ = ("_block", "_i", "_key", "_words")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._block = 0
        self._words = self._fill(0)
        self._i = 0

    def _fill(self, j: int) -> tuple[int, ...]:
        return _BLOCK.unpack(hashlib.blake2b(self._key, digest_size=64,
                                             salt=j.to_bytes(16, "little")).digest())

    def random(self) -> float:
        i = self._i
        if i == 8:
            self._block += 1
            self._words = self._fill(self._block)
            i = 0
        self._i = i + 1
        return (self._words[i] >> 11) * _UNIT


class MarketModel:
    def __init__(self, seed: int, competitors: int) -> None:
        self.seed = seed
        self.competitors = competitors

    def rng(self, request_id: str, imp_id: str) -> HashStream:
        return HashStream(f"{self.seed}\x1f{request_id}\x1f{imp_id}".encode())

    def competing_bids(
        self, rng: HashStream, segment: str, media: str, hour: int
    ) -> list[float]:
        median = SEGMENT_MEDIAN_CPM.get(segment, SEGMENT_MEDIAN_CPM["unknown"])
        mu = math.log(median * MEDIA_FACTOR.get(media, 1.0) * hour_factor(hour))
        out: list[float] = []
        while len(out) < self.competitors:  # Box-Muller: two normals per two uniforms
            r = SIGMA * math.sqrt(-2.0 * math.log(1.0 - rng.random()))
            theta = _TWO_PI * rng.random()
            out.append(round(math.exp(mu + r * math.cos(theta)), 4))
            if len(out) < self.competitors:
                out.append(round(math.exp(mu + r * math.sin(theta)), 4))
        return out
