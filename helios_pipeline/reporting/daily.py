"""The daily report: the day's KPIs against the previous 7 days, by hour, media type,
segment and site, and why bids were lost. Read from ``daily_stats`` (counts and sums) and
``outcomes`` (loss reasons); every rate is computed from summed counts (DESIGN.md KPIs:
bid rate = bids / requests, win rate = wins / bids, spend = Σ clearing / 1000,
eCPM = spend / wins × 1000), never averaged.

``load`` queries, ``render_markdown`` / ``render_html`` format (helios_pipeline.reporting
.formats), ``write_csv`` writes the day's rows rounded, the charts are matplotlib PNGs.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

from helios_pipeline.api.queries import LOSS_REASONS
from helios_pipeline.reporting import formats as f

TREND_DAYS = 7  # the day is compared with this many days before it


@dataclass(frozen=True)
class Kpis:
    """Summed counts and sums of some daily_stats rows, and the KPIs computed from them."""

    requests: int = 0
    bids: int = 0
    wins: int = 0
    clearing_usd: float = 0.0  # Σ clearing prices (CPM)

    @property
    def bid_rate(self) -> float | None:
        return self.bids / self.requests if self.requests else None

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.bids if self.bids else None

    @property
    def spend_usd(self) -> float:
        return self.clearing_usd / 1000

    @property
    def ecpm_usd(self) -> float | None:
        return self.clearing_usd / self.wins if self.wins else None

    def __add__(self, other: Kpis) -> Kpis:
        return Kpis(self.requests + other.requests, self.bids + other.bids,
                    self.wins + other.wins, self.clearing_usd + other.clearing_usd)


SUMS = ("coalesce(sum(requests), 0)::BIGINT, coalesce(sum(bids), 0)::BIGINT, "
        "coalesce(sum(wins), 0)::BIGINT, coalesce(sum(clearing_sum_usd), 0)::DOUBLE")


@dataclass
class ReportData:
    day: str
    total: Kpis
    hours: dict[int, Kpis]
    trend: list[tuple[date, Kpis]]  # the previous TREND_DAYS days, then the day
    by_media: list[tuple[str, Kpis]]
    by_segment: list[tuple[str, Kpis]]
    sites: list[tuple[str, str, Kpis]]  # the top rows by bids
    site_rows: int  # site × segment rows of the day (the "M" of "top N of M")
    site_count: int
    losses: list[tuple[int | None, int]]  # (loss_reason, lost bids)
    nobids: int
    outcome_bids: int  # won + lost rows in outcomes (the base of "% of bids")
    prev: Kpis = field(default_factory=Kpis)  # Σ of the previous TREND_DAYS days

    @property
    def others(self) -> Kpis:
        shown = Kpis()
        for *_k, k in self.sites:
            shown = shown + k
        return Kpis(self.total.requests - shown.requests, self.total.bids - shown.bids,
                    self.total.wins - shown.wins, self.total.clearing_usd - shown.clearing_usd)


def _kpis(row) -> Kpis:
    return Kpis(int(row[0]), int(row[1]), int(row[2]), float(row[3]))


def load(con: duckdb.DuckDBPyConnection, day: str, top_rows: int) -> ReportData:
    d = date.fromisoformat(day)
    first = d - timedelta(days=TREND_DAYS)

    def grouped(col: str) -> list[tuple[str, Kpis]]:
        rows = con.execute(f"""SELECT {col}, {SUMS} FROM daily_stats WHERE day = ?
                               GROUP BY 1 ORDER BY 3 DESC, 1""", [d]).fetchall()
        return [(str(r[0]), _kpis(r[1:])) for r in rows]

    total = _kpis(con.execute(f"SELECT {SUMS} FROM daily_stats WHERE day = ?", [d]).fetchone())
    hours = {int(r[0]): _kpis(r[1:]) for r in con.execute(
        f"SELECT hour, {SUMS} FROM daily_stats WHERE day = ? GROUP BY hour", [d]).fetchall()}
    by_day = {r[0]: _kpis(r[1:]) for r in con.execute(
        f"SELECT day, {SUMS} FROM daily_stats WHERE day BETWEEN ? AND ? GROUP BY day",
        [first, d]).fetchall()}
    trend = [(first + timedelta(days=i), by_day.get(first + timedelta(days=i), Kpis()))
             for i in range(TREND_DAYS + 1)]
    prev = Kpis()
    for _day, k in trend[:-1]:
        prev = prev + k
    sites = con.execute(f"""SELECT domain, segment, {SUMS} FROM daily_stats WHERE day = ?
                            GROUP BY domain, segment ORDER BY 4 DESC, 1, 2
                            LIMIT {int(top_rows)}""", [d]).fetchall()
    site_rows, site_count = con.execute(
        """SELECT count(DISTINCT (domain, segment)), count(DISTINCT domain)
           FROM daily_stats WHERE day = ?""", [d]).fetchone()
    losses = con.execute("""SELECT loss_reason, count(*) FROM outcomes
                            WHERE day = ? AND outcome = 'lost'
                            GROUP BY loss_reason ORDER BY 2 DESC, 1""", [d]).fetchall()
    nobids, outcome_bids = con.execute(
        """SELECT count(*) FILTER (WHERE outcome = 'nobid'),
                  count(*) FILTER (WHERE outcome IN ('won', 'lost'))
           FROM outcomes WHERE day = ?""", [d]).fetchone()
    return ReportData(day=day, total=total, hours=hours, trend=trend,
                      by_media=grouped("media"), by_segment=grouped("segment"),
                      sites=[(r[0], r[1], _kpis(r[2:])) for r in sites],
                      site_rows=int(site_rows), site_count=int(site_count),
                      losses=[(r[0], int(r[1])) for r in losses], nobids=int(nobids),
                      outcome_bids=int(outcome_bids), prev=prev)


# --- the tables, as strings; rendered to Markdown and HTML alike -----------------------------

@dataclass
class Table:
    id: str
    title: str
    header: list[str]
    rows: list[list[str]]
    total: list[str] | None = None
    note: str = ""
    text_cols: int = 1  # the first columns are labels (left-aligned)
    extra: list[list[str]] = field(default_factory=list)  # e.g. "other rows", before total


KPI_HEADER = ["requests", "bids", "wins", "bid rate", "win rate", "spend (USD)",
              "eCPM (USD)"]


def kpi_cells(k: Kpis) -> list[str]:
    return [f.count(k.requests), f.count(k.bids), f.count(k.wins), f.pct(k.bid_rate),
            f.pct(k.win_rate), f.money(k.spend_usd), f.money(k.ecpm_usd)]


def tables(r: ReportData) -> list[Table]:
    t, p, n = r.total, r.prev, TREND_DAYS
    vs = Table(
        "vs-previous", f"The day against the previous {n} days",
        ["metric", r.day, f"previous {n} days", "change"],
        [["requests", f.count(t.requests), f"{f.count(round(p.requests / n))} / day",
          f.change(t.requests, p.requests / n)],
         ["bids", f.count(t.bids), f"{f.count(round(p.bids / n))} / day",
          f.change(t.bids, p.bids / n)],
         ["wins", f.count(t.wins), f"{f.count(round(p.wins / n))} / day",
          f.change(t.wins, p.wins / n)],
         ["bid rate", f.pct(t.bid_rate), f.pct(p.bid_rate),
          f.points(None if t.bid_rate is None or p.bid_rate is None
                   else t.bid_rate - p.bid_rate)],
         ["win rate", f.pct(t.win_rate), f.pct(p.win_rate),
          f.points(None if t.win_rate is None or p.win_rate is None
                   else t.win_rate - p.win_rate)],
         ["spend (USD)", f.money(t.spend_usd), f"{f.money(p.spend_usd / n)} / day",
          f.change(t.spend_usd, p.spend_usd / n)],
         ["eCPM (USD)", f.money(t.ecpm_usd), f.money(p.ecpm_usd),
          f.change(t.ecpm_usd, p.ecpm_usd)]],
        note=f"Previous {n} days: {r.trend[0][0]} to {r.trend[-2][0]}; counts and spend as "
             "a daily average, rates and eCPM from the 7 days' summed counts. Rate changes "
             "in percentage points.")
    media = Table("by-media", "By media type", ["media", *KPI_HEADER],
                  [[m, *kpi_cells(k)] for m, k in r.by_media],
                  total=["total", *kpi_cells(t)],
                  note=f"{len(r.by_media)} media types, by bids.")
    segment = Table("by-segment", "By segment", ["segment", *KPI_HEADER],
                    [[s, *kpi_cells(k)] for s, k in r.by_segment],
                    total=["total", *kpi_cells(t)],
                    note=f"{len(r.by_segment)} segments, by bids.")
    lost = sum(c for _r, c in r.losses)
    losses = Table(
        "loss-reasons", "Why bids were lost", ["code", "loss reason", "lost bids",
                                               "% of lost bids", "% of bids"],
        [[("—" if code is None else str(code)),
          LOSS_REASONS.get(code, "unknown") if code is not None else "no reason given",
          f.count(c), f.pct(c / lost if lost else None),
          f.pct(c / r.outcome_bids if r.outcome_bids else None)] for code, c in r.losses],
        total=["", "all lost bids", f.count(lost), f.pct(1.0 if lost else None),
               f.pct(lost / r.outcome_bids if r.outcome_bids else None)],
        note=f"OpenRTB loss reason codes, from `outcomes`. {f.count(r.nobids)} requests "
             "were not bid on (no-bids are not bids, so not in this table).",
        text_cols=2)
    shown = len(r.sites)
    top = Table(
        "by-site", f"By site and segment: top {shown} of {f.count(r.site_rows)}",
        ["domain", "segment", *KPI_HEADER],
        [[d, s, *kpi_cells(k)] for d, s, k in r.sites],
        total=["total", f"{f.count(r.site_rows)} rows", *kpi_cells(t)],
        note=f"Top {shown} of {f.count(r.site_rows)} site × segment rows "
             f"({f.count(r.site_count)} sites), by bids.",
        text_cols=2,
        extra=[[f"other {f.count(r.site_rows - shown)} rows", "", *kpi_cells(r.others)]]
        if r.site_rows > shown else [])
    return [vs, media, segment, losses, top]


def headline(r: ReportData) -> str:
    """One sentence, Markdown bold for the numbers."""
    t = r.total
    return (f"**{f.count(t.requests)}** requests, **{f.count(t.bids)}** bids "
            f"(bid rate **{f.pct(t.bid_rate)}**), **{f.count(t.wins)}** wins "
            f"(win rate **{f.pct(t.win_rate)}**); spend **{f.money(t.spend_usd)}**, "
            f"eCPM **{f.money(t.ecpm_usd)}**.")


def md_table(t: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---"] * t.text_cols + ["--:"] * (len(t.header) - t.text_cols)
    lines = [line(t.header), "| " + " | ".join(align) + " |"]
    lines += [line(row) for row in t.rows + t.extra]
    if t.total:
        lines.append(line([f"**{c}**" if c else "" for c in t.total]))
    return "\n".join(lines)


def render_markdown(r: ReportData, images: dict[str, str] | None = None) -> str:
    """The report in Markdown; ``images``: alt text → URL (a file name or a data: URL)."""
    parts = [f"# Daily report — {r.day}", headline(r)]
    for alt, url in (images or {}).items():
        parts.append(f"![{alt}]({url})")
    for t in tables(r):
        parts += [f"## {t.title}", md_table(t)] + ([f"_{t.note}_"] if t.note else [])
    return "\n\n".join(parts) + "\n"


def html_table(t: Table) -> str:
    def row(cells: list[str], tag: str = "td", cls: str = "") -> str:
        c = f' class="{cls}"' if cls else ""
        return f"<tr{c}>" + "".join(
            f'<{tag}{" class=l" if i < t.text_cols else ""}>{html.escape(v)}</{tag}>'
            for i, v in enumerate(cells)) + "</tr>"

    body = "".join(row(x) for x in t.rows) + "".join(row(x, cls="other") for x in t.extra)
    foot = f"<tfoot>{row(t.total, cls='total')}</tfoot>" if t.total else ""
    note = f'<p class="note">{html.escape(t.note).replace("`", "")}</p>' if t.note else ""
    return (f'<section id="{t.id}"><h2>{html.escape(t.title)}</h2>'
            f"<table><thead>{row(t.header, 'th')}</thead><tbody>{body}</tbody>{foot}"
            f"</table>{note}</section>")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1000px;padding:0 1rem;color:#1f2328;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.lead{font-size:1.05rem;color:#444}
.cards{display:flex;gap:.75rem;flex-wrap:wrap;margin:1rem 0}
.card{flex:1 1 0;border:1px solid #d0d7de;border-radius:8px;padding:.6rem .8rem;min-width:100px}
.card .k{font-size:.8rem;color:#57606a}.card .v{font-size:1.3rem;font-weight:600;
font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:.92rem}
th,td{padding:4px 10px;text-align:right;border-bottom:1px solid #e5e7eb;white-space:nowrap}
th{background:#f6f8fa;border-bottom:2px solid #d0d7de;font-weight:600}
.l{text-align:left}tbody tr:nth-child(even){background:#fbfcfd}
tr.other td{color:#57606a;font-style:italic}
tr.total td{font-weight:700;border-top:2px solid #1f2328;border-bottom:none}
.note{font-size:.82rem;color:#57606a;margin:.3rem 0 0}
img{max-width:100%;border:1px solid #e5e7eb;border-radius:6px;margin:.5rem 0}
"""


def render_html(r: ReportData, images: dict[str, bytes]) -> str:
    """A static page (no JavaScript, charts inlined as data: URLs)."""
    t = r.total
    cards = [("requests", f.count(t.requests)), ("bids", f.count(t.bids)),
             ("wins", f.count(t.wins)), ("bid rate", f.pct(t.bid_rate)),
             ("win rate", f.pct(t.win_rate)), ("spend", f.money(t.spend_usd)),
             ("eCPM", f.money(t.ecpm_usd))]
    cards_html = "".join(
        f'<div class="card" data-kpi="{html.escape(k)}"><div class="k">{html.escape(k)}</div>'
        f'<div class="v">{html.escape(v)}</div></div>' for k, v in cards)
    lead = html.escape(headline(r)).replace("**", "")
    imgs = "".join(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}">' for alt, png in images.items())
    sections = "".join(html_table(x) for x in tables(r))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Helios daily report {r.day}</title><style>{CSS}</style></head><body>
<h1>Daily report — {r.day}</h1>
<p class="lead" id="headline">{lead}</p>
<div class="cards" id="kpis">{cards_html}</div>
{imgs}
{sections}
<p class="note">Rates from summed counts: bid rate = bids / requests, win rate = wins / bids;
spend = Σ clearing prices / 1000; eCPM = spend / wins × 1000. All times UTC.</p>
</body></html>
"""


# --- CSV ---------------------------------------------------------------------------------------

CSV_SELECT = """
    SELECT day, hour, domain, segment, media, requests, bids, wins, floor_passes,
           round(bid_sum_usd, 4)::DECIMAL(18, 4) AS bid_sum_usd,
           round(clearing_sum_usd, 4)::DECIMAL(18, 4) AS clearing_sum_usd,
           round(won_bid_sum_usd, 4)::DECIMAL(18, 4) AS won_bid_sum_usd,
           round(spend_usd, 4)::DECIMAL(18, 4) AS spend_usd,
           round(bid_rate * 100, 2)::DECIMAL(7, 2) AS bid_rate_pct,
           round(win_rate * 100, 2)::DECIMAL(7, 2) AS win_rate_pct,
           round(ecpm_usd, 4)::DECIMAL(18, 4) AS ecpm_usd,
           round(avg_clearing_usd, 4)::DECIMAL(18, 4) AS avg_clearing_usd,
           round(shading_ratio, 4)::DECIMAL(18, 4) AS shading_ratio,
           round(floor_pass_rate * 100, 2)::DECIMAL(7, 2) AS floor_pass_rate_pct
    FROM daily_stats WHERE day = ?
    ORDER BY hour, domain, segment, media"""


def write_csv(con: duckdb.DuckDBPyConnection, day: str, path: Path) -> None:
    """The day's daily_stats rows; money rounded to 4 decimals (USD), rates as percentages
    with 2 decimals (columns ``*_pct``), the shading ratio as a fraction with 4."""
    select = CSV_SELECT.replace("?", f"DATE '{date.fromisoformat(day).isoformat()}'")
    target = str(path).replace("'", "''")
    con.execute(f"COPY ({select}) TO '{target}' (HEADER)")


# --- charts ------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def win_rate_chart(r: ReportData, path: Path) -> None:
    """Win rate per hour over all 24 hours (0 where nothing was bid), bids as a line."""
    plt = _plt()
    xs = list(range(24))
    ks = [r.hours.get(h, Kpis()) for h in xs]
    rates = [(k.win_rate or 0.0) * 100 for k in ks]
    fig, ax = plt.subplots(figsize=(10, 3.4), dpi=100)
    ax.bar(xs, rates, color="#1f6feb", width=0.7, label="win rate (%)")
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("win rate (%)")
    ax.set_xticks(xs)
    ax.set_xlim(-0.6, 23.6)
    ax.set_ylim(0, max([*rates, 10]) * 1.25)
    ax.grid(axis="y", color="#eee")
    ax.set_axisbelow(True)
    ax2 = ax.twinx()
    ax2.plot(xs, [k.bids for k in ks], color="#8c959f", marker=".", lw=1, label="bids")
    ax2.set_ylabel("bids")
    ax2.set_ylim(0, max([k.bids for k in ks] + [1]) * 1.25)
    fig.legend(loc="upper right", bbox_to_anchor=(0.92, 0.88), fontsize=8, frameon=False)
    ax.set_title(f"Win rate by hour — {r.day} (0 where there were no bids)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def trend_chart(r: ReportData, path: Path) -> None:
    """Win rate, spend, eCPM and bid rate: the day (highlighted) and the 7 days before it."""
    plt = _plt()
    days = [d for d, _k in r.trend]
    labels = [d.strftime("%b %d") for d in days]
    p = r.prev
    series = [("win rate (%)", [(k.win_rate or 0) * 100 for _d, k in r.trend],
               (p.win_rate or 0) * 100),
              ("spend (USD)", [k.spend_usd for _d, k in r.trend], p.spend_usd / TREND_DAYS),
              ("eCPM (USD)", [k.ecpm_usd or 0 for _d, k in r.trend], p.ecpm_usd or 0),
              ("bid rate (%)", [(k.bid_rate or 0) * 100 for _d, k in r.trend],
               (p.bid_rate or 0) * 100)]
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), dpi=100)
    for ax, (title, ys, base) in zip(axes, series, strict=True):
        ax.plot(labels, ys, color="#1f6feb", marker="o", ms=3, lw=1.2)
        ax.plot(labels[-1:], ys[-1:], color="#cf222e", marker="o", ms=7)
        ax.axhline(base, color="#8c959f", ls="--", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max([*ys, base, 1e-9]) * 1.25)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", color="#eee")
    fig.suptitle(f"{r.day} (red) against the previous {TREND_DAYS} days "
                 "(dashed: the 7 days from summed counts; spend per day)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
