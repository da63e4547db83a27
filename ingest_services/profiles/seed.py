"""A reproducible synthetic user-profile population.

Same ``seed`` and ``users`` → byte-identical profiles, so a test, a demo and a Dagster
backfill all see the same users. Interest categories are IAB tier-1 content categories
with a skewed (Zipf-like) popularity, as real audience data is; scores are Beta(2, 3)
distributed so only a minority of users has a strong (> 0.9) affinity.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

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


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One seeded profile as plain values: the warehouse row, and the source of the proto."""

    user_id: str
    locale: str
    interests: tuple[tuple[str, float], ...]  # (IAB category, score), sorted by category
    age_band: str
    gender: str
    income_band: str
    country: str

    def best(self) -> tuple[str, float] | None:
        return _best(self.interests)

    def to_proto(self) -> pb.UserProfile:
        profile = pb.UserProfile(user_id=self.user_id, locale=self.locale)
        for cat, score in self.interests:
            profile.interests.add(category=cat, score=score)
        profile.demographics["age_band"] = self.age_band
        profile.demographics["gender"] = self.gender
        profile.demographics["income_band"] = self.income_band
        profile.demographics["country"] = self.country
        return profile


# cumulative weights, computed once (random.choices would redo it on every call)
_LOCALE_CUM = list(accumulate(_LOCALE_WEIGHTS))
_N_INTERESTS = (1, 2, 3, 4, 5)
_N_INTERESTS_CUM = list(accumulate((20, 30, 25, 15, 10)))
_CAT_CUM = list(accumulate(_CAT_WEIGHTS))
_AGE_CUM = list(accumulate(_AGE_WEIGHTS))
_GENDER_CUM = list(accumulate(_GENDER_WEIGHTS))
_INCOME_CUM = list(accumulate(_INCOME_WEIGHTS))


def make_row(index: int, rng: random.Random) -> ProfileRow:
    choices = rng.choices
    locale = choices(LOCALES, cum_weights=_LOCALE_CUM)[0]
    n_interests = choices(_N_INTERESTS, cum_weights=_N_INTERESTS_CUM)[0]
    cats = sorted(set(choices(IAB_CATEGORIES, cum_weights=_CAT_CUM, k=n_interests)))
    interests = tuple((cat, round(rng.betavariate(2, 3), 4)) for cat in cats)
    return ProfileRow(
        user_id(index), locale, interests,
        choices(AGE_BANDS, cum_weights=_AGE_CUM)[0],
        choices(GENDERS, cum_weights=_GENDER_CUM)[0],
        choices(INCOME_BANDS, cum_weights=_INCOME_CUM)[0],
        COUNTRY_OF[locale],
    )


def make_profile(index: int, rng: random.Random) -> pb.UserProfile:
    return make_row(index, rng).to_proto()


def generate_rows(users: int, seed: int, start: int = 0) -> Iterator[ProfileRow]:
    """Rows ``start`` .. ``users-1``; each user's draws depend only on (seed, index)."""
    for i in range(start, users):
        yield make_row(i, random.Random(seed * 1_000_003 + i))


def generate(users: int, seed: int, start: int = 0) -> Iterator[pb.UserProfile]:
    """The same population as protobuf messages (what Redis holds)."""
    for row in generate_rows(users, seed, start):
        yield row.to_proto()


def _best(pairs) -> tuple[str, float] | None:
    """The highest score; ties go to the smaller category name (deterministic)."""
    best = None
    for cat, score in pairs:
        if best is None or score > best[1] or (score == best[1] and cat < best[0]):
            best = (cat, score)
    return best


def best_interest(profile: pb.UserProfile) -> tuple[str, float] | None:
    """The bidder's targeting signal: the profile's highest-scoring interest."""
    return _best((it.category, it.score) for it in profile.interests)


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
