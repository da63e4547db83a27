"""A reproducible synthetic user-profile population.

Same ``seed`` and ``users`` → byte-identical profiles, so a test, a demo and a Dagster
backfill all see the same users. Interest categories are IAB tier-1 content categories
with a skewed (Zipf-like) popularity, as real audience data is; scores are Beta(2, 3)
distributed so only a minority of users has a strong (> 0.9) affinity.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ingest_services.profiles.generated import user_profile_pb2 as pb

# IAB Content Taxonomy 1.0 tier-1 categories.
IAB_CATEGORIES = [f"IAB{i}" for i in range(1, 27)]
_CAT_WEIGHTS = [1.0 / (rank + 1) ** 0.8 for rank in range(len(IAB_CATEGORIES))]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "pt-BR", "ja-JP", "nl-NL"]
_LOCALE_WEIGHTS = [40, 12, 10, 9, 8, 6, 7, 5, 3]
COUNTRY_OF = {
    "en-US": "USA", "en-GB": "GBR", "de-DE": "DEU", "fr-FR": "FRA", "es-ES": "ESP",
    "it-IT": "ITA", "pt-BR": "BRA", "ja-JP": "JPN", "nl-NL": "NLD",
}
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
_AGE_WEIGHTS = [14, 24, 21, 17, 13, 11]
GENDERS = ["female", "male", "unknown"]
_GENDER_WEIGHTS = [47, 47, 6]
INCOME_BANDS = ["low", "middle", "upper-middle", "high"]
_INCOME_WEIGHTS = [25, 40, 25, 10]


def user_id(index: int) -> str:
    """The id of the ``index``-th seeded user; load generators use the same scheme."""
    return f"u{index:08d}"


def make_profile(index: int, rng: random.Random) -> pb.UserProfile:
    locale = rng.choices(LOCALES, _LOCALE_WEIGHTS)[0]
    n_interests = rng.choices((1, 2, 3, 4, 5), (20, 30, 25, 15, 10))[0]
    cats = set(rng.choices(IAB_CATEGORIES, _CAT_WEIGHTS, k=n_interests))
    profile = pb.UserProfile(user_id=user_id(index), locale=locale)
    for cat in sorted(cats):
        profile.interests.add(category=cat, score=round(rng.betavariate(2, 3), 4))
    profile.demographics["age_band"] = rng.choices(AGE_BANDS, _AGE_WEIGHTS)[0]
    profile.demographics["gender"] = rng.choices(GENDERS, _GENDER_WEIGHTS)[0]
    profile.demographics["income_band"] = rng.choices(INCOME_BANDS, _INCOME_WEIGHTS)[0]
    profile.demographics["country"] = COUNTRY_OF[locale]
    return profile


def generate(users: int, seed: int, start: int = 0) -> Iterator[pb.UserProfile]:
    """Profiles ``start`` .. ``users-1``; each user's draws depend only on (seed, index)."""
    for i in range(start, users):
        yield make_profile(i, random.Random(seed * 1_000_003 + i))


def best_interest(profile: pb.UserProfile) -> tuple[str, float] | None:
    """The highest-scoring interest (ties: category name), the bidder's targeting signal."""
    best = None
    for it in profile.interests:
        if best is None or it.score > best[1] or (it.score == best[1] and it.category < best[0]):
            best = (it.category, it.score)
    return best


def load_into_redis(
    client, users: int, seed: int, batch: int = 5000, on_batch=None
) -> int:
    """Write the population to Redis in pipelined batches; ``on_batch(n)`` reports progress."""
    from ingest_services.profiles.store import write_profiles

    written = 0
    for start in range(0, users, batch):
        n = write_profiles(client, generate(min(users, start + batch), seed, start))
        written += n
        if on_batch:
            on_batch(n)
    return written
