"""The simulated open market the auctioneer bids against.

Competing bids are log-normal (the usual choice in RTB simulation: prices are positive and
right-skewed), with a median per audience segment and media type and a diurnal factor by
hour (UTC). The random stream is seeded from (market seed, request id, imp id): replaying a
request gives the same competitors, hence the same outcome.
"""

from __future__ import annotations

import hashlib
import math
import random

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


class MarketModel:
    def __init__(self, seed: int, competitors: int) -> None:
        self.seed = seed
        self.competitors = competitors

    def rng(self, request_id: str, imp_id: str) -> random.Random:
        digest = hashlib.blake2b(
            f"{self.seed}\x1f{request_id}\x1f{imp_id}".encode(), digest_size=8
        ).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def competing_bids(
        self, rng: random.Random, segment: str, media: str, hour: int
    ) -> list[float]:
        median = SEGMENT_MEDIAN_CPM.get(segment, SEGMENT_MEDIAN_CPM["unknown"])
        mu = math.log(median * MEDIA_FACTOR.get(media, 1.0) * hour_factor(hour))
        return [round(rng.lognormvariate(mu, SIGMA), 4) for _ in range(self.competitors)]
