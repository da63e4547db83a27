"""``daily_win_rate_report``: what account managers read each morning.

For one UTC day, under ``$HELIOS_HOME/reports/<date>/``: report.html (static, charts
inlined), report.md, daily_stats.csv (rounded), win_rate_by_hour.png and trend_7_days.png.
The day against the previous 7 days, by media type, segment and site (top N of M, with
totals), and the loss reasons (helios_pipeline/reporting/daily.py). The Markdown report and
the charts are also in the asset's metadata, so the Dagster UI shows them.
"""


import base64
from pathlib import Path

import dagster as dg

from assets.warehouse import daily_stats
from helios_pipeline.automation import daily
from helios_pipeline.reporting import daily as report
from helios_pipeline.resources import DuckDBWarehouse, PathsResource


class ReportConfig(dg.Config):
    reports_dir: str | None = None  # default: the `paths` resource
    top_rows: int = 15


@dg.asset(
    group_name="reporting",
    kinds={"html", "markdown"},
    deps=[daily_stats],
    partitions_def=daily,
    description="Daily report: the day against the previous 7 days, by hour, media type, "
                "segment and site, loss reasons; HTML, Markdown and rounded CSV",
)
def daily_win_rate_report(context: dg.AssetExecutionContext, config: ReportConfig,
                          warehouse: DuckDBWarehouse, paths: PathsResource
                          ) -> dg.MaterializeResult:
    day = context.partition_key
    out = Path(config.reports_dir or paths.reports_dir) / day
    out.mkdir(parents=True, exist_ok=True)
    trend = f"day BETWEEN CAST('{day}' AS DATE) - {report.TREND_DAYS} AND CAST('{day}' AS DATE)"
    with warehouse.reader({"daily_stats": trend, "outcomes": f"day = '{day}'"}) as con:
        data = report.load(con, day, config.top_rows)
        report.write_csv(con, day, out / "daily_stats.csv")
    charts = {"win rate by hour": out / "win_rate_by_hour.png",
              "trend against the previous 7 days": out / "trend_7_days.png"}
    report.win_rate_chart(data, charts["win rate by hour"])
    report.trend_chart(data, charts["trend against the previous 7 days"])
    pngs = {alt: p.read_bytes() for alt, p in charts.items()}
    (out / "report.md").write_text(
        report.render_markdown(data, {alt: p.name for alt, p in charts.items()}))
    (out / "report.html").write_text(report.render_html(data, pngs))
    inline = {alt: "data:image/png;base64," + base64.b64encode(png).decode()
              for alt, png in pngs.items()}
    site_table = next(t for t in report.tables(data) if t.id == "by-site")
    t = data.total
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(out / "report.html")),
        "requests": t.requests,
        "bids": t.bids,
        "wins": t.wins,
        "win_rate": round(t.win_rate or 0.0, 4),
        "spend_usd": round(t.spend_usd, 4),
        "ecpm_usd": round(t.ecpm_usd or 0.0, 4),
        "report": dg.MetadataValue.md(report.render_markdown(data)),
        "by_site_and_segment": dg.MetadataValue.md(report.md_table(site_table)),
        "win_rate_by_hour": dg.MetadataValue.md(
            f"![win rate by hour]({inline['win rate by hour']})"),
        "trend_7_days": dg.MetadataValue.md(
            "![trend against the previous 7 days]"
            f"({inline['trend against the previous 7 days']})"),
    })
