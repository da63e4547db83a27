"""``user_profiles``: the seeded profile population, in DuckDB and in Redis.

Reuses the streaming side's generator, so the profiles the bidder enriches with are
exactly the rows analysts see. Reproducible from (users, seed).
"""


import dagster as dg
import pyarrow as pa

from assets.columns import schema_metadata
from helios_pipeline.resources import DuckDBWarehouse, RedisResource
from helios_pipeline.warehouse import tables
from ingest_services.profiles.seed import generate_rows
from ingest_services.profiles.store import write_profiles


class ProfilesConfig(dg.Config):
    users: int = 10_000
    seed: int = 7
    batch: int = 20_000


@dg.asset(
    group_name="profiles",
    kinds={"duckdb", "redis"},
    pool="duckdb_writer",
    description="Synthetic user profiles (IAB interests, locale, demographics) from a seed",
    metadata=schema_metadata(tables.UserProfileRow),
)
def user_profiles(
    context: dg.AssetExecutionContext,
    config: ProfilesConfig,
    warehouse: DuckDBWarehouse,
    redis: RedisResource,
) -> dg.MaterializeResult:
    client = redis.client()
    names = tuple(tables.column_names(tables.UserProfileRow))
    with warehouse.open() as db:  # DuckDB or PostgreSQL (HELIOS_WAREHOUSE_BACKEND)
        db.ddl(tables.UserProfileRow, replace=True)
        for start in range(0, config.users, config.batch):
            rows = list(generate_rows(min(config.users, start + config.batch), config.seed,
                                      start))
            write_profiles(client, (r.to_proto() for r in rows))
            cols: tuple[list, ...] = tuple([] for _ in names)
            for r in rows:
                best = r.best()
                for col, value in zip(cols, (
                        r.user_id, r.locale, r.country, r.age_band, r.gender, r.income_band,
                        best[0] if best else None, best[1] if best else None,
                        [c for c, _ in r.interests], [sc for _, sc in r.interests]),
                        strict=True):
                    col.append(value)
            db.local.register("profile_batch", pa.table(dict(zip(names, cols, strict=True))))
            db.load("user_profiles", "SELECT * FROM profile_batch")
            db.local.unregister("profile_batch")
            context.log.info(f"profiles {min(config.users, start + config.batch)}/{config.users}")
        dist = db.execute("""SELECT top_interest, count(*) AS users FROM user_profiles
                             GROUP BY 1 ORDER BY 2 DESC LIMIT 10""")
    table = "| top interest | users |\n|---|---|\n" + "\n".join(f"| {c} | {n} |" for c, n in dist)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": config.users,
        "seed": config.seed,
        "top_interests": dg.MetadataValue.md(table),
    })
