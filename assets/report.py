"""``daily_win_rate_report``: what account managers read each morning.

For one UTC day: a win-rate-by-hour chart, a table by site and segment, an HTML page and a
Markdown summary, plus CSV, under ``$HELIOS_HOME/reports/<date>/``. The Markdown table and
the chart are also in the asset's metadata, so the Dagster UI shows them.
"""


import base64
import html
from pathlib import Path

import dagster as dg

from assets.warehouse import daily, daily_stats
from helios_pipeline.resources import DuckDBWarehouse, PathsResource


class ReportConfig(dg.Config):
    reports_dir: str | None = None  # default: the `paths` resource
    top_rows: int = 15


def win_rate_chart(hours: list[tuple[int, int, int]], day: str, path: Path) -> None:
    """Bars: bids per hour; line: win rate per hour (from summed counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_hour = {h: (b, w) for h, b, w in hours}
    xs = list(range(24))
    bids = [by_hour.get(h, (0, 0))[0] for h in xs]
    rates = [(by_hour[h][1] / by_hour[h][0] * 100) if by_hour.get(h, (0, 0))[0] else None
             for h in xs]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    ax.bar(xs, bids, color="#cfd8e3", label="bids")
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("bids")
    ax.set_xticks(xs)
    ax2 = ax.twinx()
    ax2.plot([x for x, r in zip(xs, rates, strict=True) if r is not None],
             [r for r in rates if r is not None], color="#1f6feb", marker="o", label="win rate")
    ax2.set_ylabel("win rate (%)")
    ax2.set_ylim(0, max([r for r in rates if r is not None] + [10]) * 1.2)
    ax.set_title(f"Win rate by hour — {day}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _md_table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dg.asset(
    group_name="reporting",
    kinds={"html", "markdown"},
    deps=[daily_stats],
    partitions_def=daily,
    description="Daily win-rate report: chart by hour, table by site and segment, CSV",
)
def daily_win_rate_report(context: dg.AssetExecutionContext, config: ReportConfig,
                          warehouse: DuckDBWarehouse, paths: PathsResource
                          ) -> dg.MaterializeResult:
    day = context.partition_key
    out = Path(config.reports_dir or paths.reports_dir) / day
    out.mkdir(parents=True, exist_ok=True)
    with warehouse.connect(read_only=True) as con:
        totals = con.execute("""SELECT coalesce(sum(requests),0), coalesce(sum(bids),0),
                                       coalesce(sum(wins),0), coalesce(sum(spend_usd),0),
                                       coalesce(sum(clearing_sum_usd),0)
                                FROM daily_stats WHERE day = ?""", [day]).fetchall()[0]
        hours = con.execute("""SELECT hour, sum(bids), sum(wins) FROM daily_stats
                               WHERE day = ? GROUP BY hour ORDER BY hour""", [day]).fetchall()
        by_site = con.execute(f"""
            SELECT domain, segment, sum(requests) AS requests, sum(bids) AS bids,
                   sum(wins) AS wins,
                   round(sum(wins)::DOUBLE / nullif(sum(bids), 0), 4) AS win_rate,
                   round(sum(spend_usd), 4) AS spend_usd,
                   round(sum(clearing_sum_usd) / nullif(sum(wins), 0), 4) AS ecpm_usd
            FROM daily_stats WHERE day = ? GROUP BY domain, segment
            ORDER BY bids DESC, domain, segment LIMIT {int(config.top_rows)}""",
                              [day]).fetchall()
        con.execute(f"""COPY (SELECT * FROM daily_stats WHERE day = '{day}'
                              ORDER BY hour, domain, segment, media)
                        TO '{out / "daily_stats.csv"}' (HEADER)""").fetchall()
    requests, bids, wins, spend, clearing = totals
    win_rate = wins / bids if bids else 0.0
    ecpm = clearing / wins if wins else 0.0
    chart = out / "win_rate_by_hour.png"
    win_rate_chart([(int(h), int(b), int(w)) for h, b, w in hours], day, chart)
    header = ["domain", "segment", "requests", "bids", "wins", "win rate", "spend (USD)",
              "eCPM (USD)"]
    table = _md_table(header, by_site)
    summary = (f"# Daily win-rate report — {day}\n\n"
               f"**{requests:,}** imps offered, **{bids:,}** bids, **{wins:,}** wins: "
               f"win rate **{win_rate:.2%}**, spend **${spend:,.4f}**, eCPM **${ecpm:.4f}**.\n\n"
               f"![win rate by hour](win_rate_by_hour.png)\n\n## By site and segment\n\n"
               f"{table}\n")
    (out / "report.md").write_text(summary)
    png = base64.b64encode(chart.read_bytes()).decode()
    rows_html = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
                        + "</tr>" for row in by_site)
    (out / "report.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>Helios daily win-rate report {day}</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;max-width:960px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}</style></head><body>
<h1>Daily win-rate report — {day}</h1>
<p>{requests:,} imps offered, {bids:,} bids, {wins:,} wins: win rate <b>{win_rate:.2%}</b>,
spend <b>${spend:,.4f}</b>, eCPM <b>${ecpm:.4f}</b>.</p>
<img alt="win rate by hour" src="data:image/png;base64,{png}">
<h2>By site and segment</h2><table><tr>{"".join(f"<th>{h}</th>" for h in header)}</tr>
{rows_html}</table></body></html>""")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(out / "report.html")),
        "win_rate": round(win_rate, 4),
        "bids": bids,
        "wins": wins,
        "spend_usd": round(spend, 4),
        "by_site_and_segment": dg.MetadataValue.md(table),
        "win_rate_by_hour": dg.MetadataValue.md(
            f"![win rate by hour](data:image/png;base64,{png})"),
    })
