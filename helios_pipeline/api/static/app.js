// Helios advertiser dashboard. Plain JS, no build step; talks to the analytics API of
// docs/api.md with relative URLs and draws with the vendored Chart.js (window.Chart).
"use strict";

const FILTERS = ["user_id", "site_domain", "win_status", "enriched", "min_price", "max_price",
  "date_from", "date_to", "media_type", "segment", "outcome", "loss_reason"];
const REFRESH_MS = 30000;
const BREAKDOWN_ROWS = 15;

// OpenRTB 2.6 loss reasons (the codes the auctioneer emits and their neighbours).
const LOSS_REASONS = {
  0: "Bid won", 1: "Internal error", 2: "Impression opportunity expired",
  3: "Invalid bid response", 100: "Bid was below auction floor",
  101: "Bid was below deal floor", 102: "Lost to higher bid",
  103: "Lost to a bid for a PMP deal", 104: "Buyer seat blocked",
};
const AUCTION_TYPES = { 1: "first price", 2: "second price", 3: "fixed price" };
const DEVICE_TYPES = { 1: "mobile/tablet", 2: "personal computer", 3: "connected TV",
  4: "phone", 5: "tablet", 6: "connected device", 7: "set-top box", 8: "out-of-home" };

const state = {
  filters: {},          // query-parameter name → string value (only the set ones)
  page: 1,
  pageSize: 50,
  ordering: "-timestamp",
  loadToken: 0,
  tableToken: 0,
  loading: false,
  charts: {},
  storyRid: null,
  storyTrigger: null,
  lastAsOf: null,
};

// ---------- formatting ----------
const fmtCount = new Intl.NumberFormat("en-US");
const fmtMoney = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD",
  minimumFractionDigits: 2, maximumFractionDigits: 4 });
const DASH = "—";

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const count = (v) => (isNum(v) ? fmtCount.format(v) : DASH);
const money = (v) => (isNum(v) ? fmtMoney.format(v) : DASH);
const pct = (v) => (isNum(v) ? `${v.toFixed(2)}%` : DASH);   // v is already 0–100
const human = (s) => (s == null || s === "" ? DASH : String(s).replace(/_/g, " "));
const coded = (table, v) => (v == null ? DASH : (table[v] ? `${v} · ${table[v]}` : String(v)));

function isoToText(iso) {
  if (!iso) return DASH;
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]}` : iso;
}

function ago(date) {
  const s = Math.round((Date.now() - date.getTime()) / 1000);
  if (s < 0) return "";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

// ---------- DOM helpers ----------
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "title"
             || k === "tabindex" || k === "scope" || k === "type" || k === "colspan") {
      node.setAttribute(k, v === true ? "" : String(v));
    } else node[k] = v;
  }
  for (const c of children) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function showMessage(text) {
  const m = $("#message");
  m.textContent = text || "";
  m.hidden = !text;
}

// ---------- API ----------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function api(path, params = {}) {
  let resp;
  try {
    resp = await fetch(`/api/${path}${query(params)}`, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new ApiError(0, "The analytics API cannot be reached.");
  }
  noteAsOf(resp.headers.get("X-Data-As-Of"));
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    let msg = `${resp.status} ${resp.statusText}`;
    if (body && Array.isArray(body.detail)) {
      msg = body.detail.map((d) => {
        const where = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : "";
        return where ? `${where}: ${d.msg}` : d.msg;
      }).join("; ");
    } else if (body && typeof body.detail === "string") {
      msg = body.detail;
    }
    throw new ApiError(resp.status, msg);
  }
  return body;
}

function noteAsOf(header) {
  const line = $("#as-of");
  if (header === "none") {        // the API's answer when the snapshot holds no outcomes
    state.lastAsOf = null;
    line.textContent = "Data as of: no data published yet";
    line.dataset.asOf = "none";
  } else if (header) {
    state.lastAsOf = header;
    const d = new Date(header);
    const text = Number.isNaN(d.getTime()) ? header
      : `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
    line.textContent = `Data as of ${text}`;
    line.title = Number.isNaN(d.getTime()) ? header : `${header} (${ago(d)})`;
    line.dataset.asOf = header;
  } else if (!state.lastAsOf) {
    line.textContent = "Data as of: no data published yet";
    line.dataset.asOf = "";
  }
}

// ---------- filters ----------
function readForm() {
  const form = $("#filters");
  const out = {};
  for (const name of FILTERS) {
    const field = form.elements.namedItem(name);
    if (!field) continue;
    const v = String(field.value || "").trim();
    if (v !== "") out[name] = v;
  }
  return out;
}

function writeForm(filters) {
  const form = $("#filters");
  for (const name of FILTERS) {
    const field = form.elements.namedItem(name);
    if (field) field.value = filters[name] ?? "";
  }
}

function readUrl() {
  const q = new URLSearchParams(window.location.search);
  const filters = {};
  for (const name of FILTERS) {
    const v = q.get(name);
    if (v) filters[name] = v;
  }
  state.filters = filters;
  state.page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  const size = parseInt(q.get("page_size") || "", 10);
  if (size >= 1 && size <= 1000) state.pageSize = size;        // the API's bounds
  const ord = q.get("ordering");
  if (ord && /^-?(timestamp|bid_price|win_price)$/.test(ord)) state.ordering = ord;
}

function writeUrl() {
  const params = { ...state.filters };
  if (state.page > 1) params.page = state.page;
  if (state.pageSize !== 50) params.page_size = state.pageSize;
  if (state.ordering !== "-timestamp") params.ordering = state.ordering;
  history.replaceState(null, "", `${window.location.pathname}${query(params)}`);
}

const hasFilters = () => Object.keys(state.filters).length > 0;

function singleDay() {
  const f = state.filters;
  return Boolean(f.date_from && f.date_to && f.date_from === f.date_to);
}

// ---------- cards ----------
function renderCards(s) {
  $("#v-total").textContent = count(s.total_outcomes);
  $("#s-total").textContent =
    `${count(s.total_wins)} wins · ${count(s.total_losses)} losses · ${count(s.no_bid_count)} no bids`;
  $("#v-winrate").textContent = pct(s.win_rate);
  $("#s-winrate").textContent = `${count(s.enriched_count)} enriched · bid rate ${pct(s.bid_rate)}`;
  $("#v-spend").textContent = money(s.total_revenue);
  $("#s-spend").textContent = `avg clearing price ${money(s.average_clearing_price)} CPM`;
  $("#v-avgbid").textContent = money(s.average_bid_price);
  $("#s-avgbid").textContent = `eCPM ${money(s.ecpm)}`;
  for (const [id, v] of [["card-total", s.total_outcomes], ["card-winrate", s.win_rate],
    ["card-spend", s.total_revenue], ["card-avgbid", s.average_bid_price]]) {
    $(`[data-testid="${id}"]`).dataset.value = v == null ? "" : String(v);
  }
}

function clearCards() {
  for (const id of ["v-total", "v-winrate", "v-spend", "v-avgbid"]) $(`#${id}`).textContent = DASH;
  for (const id of ["s-total", "s-winrate", "s-spend", "s-avgbid"]) $(`#${id}`).textContent = " ";
}

function setEmpty(empty, reason) {
  const box = $("#empty-state");
  box.hidden = !empty;
  $("#content").hidden = empty;
  if (!empty) return;
  if (reason === "filters") {
    $("#empty-title").textContent = "No outcomes match these filters";
    $("#empty-text").textContent = "Widen the date range or clear some filters.";
  } else {
    $("#empty-title").textContent = "No data yet";
    $("#empty-text").textContent = "No auction outcomes have been published yet. Send some bid "
      + "requests; the dashboard fills in within about a minute.";
  }
}

// ---------- charts ----------
const COLORS = { won: "#2e7d32", lost: "#c62828", nobid: "#9e9e9e", line: "#1565c0",
  spend: "#6a1b9a" };

function chartsAvailable() { return typeof window.Chart === "function"; }

function ensureCharts() {
  if (!chartsAvailable() || state.charts.winrate) return;
  const Chart = window.Chart;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  const common = { responsive: true, maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false } };
  state.charts.winrate = new Chart($("#chart-winrate"), {
    type: "line",
    data: { labels: [], datasets: [{ label: "Win rate", data: [], borderColor: COLORS.line,
      backgroundColor: "rgba(21,101,192,.15)", fill: true, tension: 0.2, pointRadius: 2 }] },
    options: { ...common, plugins: { legend: { display: false },
      tooltip: { callbacks: { label: (c) => `Win rate ${pct(c.parsed.y)}` } } },
    scales: { y: { beginAtZero: true, suggestedMax: 100, ticks: { callback: (v) => `${v}%` } } } },
  });
  state.charts.wl = new Chart($("#chart-wl"), {
    type: "doughnut",
    data: { labels: ["Wins", "Losses", "No bids"], datasets: [{ data: [0, 0, 0],
      backgroundColor: [COLORS.won, COLORS.lost, COLORS.nobid] }] },
    options: { responsive: true, maintainAspectRatio: false,
      plugins: { legend: { position: "bottom" },
        tooltip: { callbacks: { label: (c) => `${c.label}: ${count(c.parsed)}` } } } },
  });
  state.charts.spend = new Chart($("#chart-spend"), {
    type: "bar",
    data: { labels: [], datasets: [{ label: "Spend", data: [], backgroundColor: COLORS.spend }] },
    options: { ...common, plugins: { legend: { display: false },
      tooltip: { callbacks: { label: (c) => `Spend ${money(c.parsed.y)}` } } },
    scales: { y: { beginAtZero: true, ticks: { callback: (v) => money(v) } } } },
  });
}

function seriesLabel(row, hourly, manyDays) {
  if (!hourly) return row.date;
  const h = String(row.group ?? "").padStart(2, "0");
  return manyDays ? `${row.date} ${h}:00` : `${h}:00`;
}

function renderSeries(rows, hourly) {
  if (!chartsAvailable()) return;
  ensureCharts();
  const days = new Set(rows.map((r) => r.date));
  const labels = rows.map((r) => seriesLabel(r, hourly, days.size > 1));
  const unit = hourly ? `per hour, ${[...days][0] || ""} UTC` : "per day (UTC)";
  $("#cap-winrate").textContent = `Win rate over time (${unit})`;
  $("#cap-spend").textContent = `Spend over time (${unit})`;
  const wr = state.charts.winrate;
  wr.data.labels = labels;
  wr.data.datasets[0].data = rows.map((r) => r.win_rate ?? 0);
  wr.data.datasets[0].pointRadius = rows.length <= 3 ? 5 : 2;   // a lone point stays visible
  wr.update("none");
  const sp = state.charts.spend;
  sp.data.labels = labels;
  sp.data.datasets[0].data = rows.map((r) => r.revenue ?? 0);
  sp.update("none");
}

function renderWinsLosses(s) {
  if (!chartsAvailable()) return;
  ensureCharts();
  const c = state.charts.wl;
  c.data.datasets[0].data = [s.total_wins || 0, s.total_losses || 0, s.no_bid_count || 0];
  c.update("none");
}

// ---------- breakdowns ----------
// Rows are per (day, group): sum the counts and money, then compute rates from the sums.
// The win rate is wins / bids (DESIGN.md); when the rows carry no bid count, the table says
// so and shows wins / outcomes instead of averaging per-row rates.
function aggregate(rows) {
  const by = new Map();
  let haveBids = rows.length > 0;
  for (const r of rows) {
    const key = r.group ?? null;
    const a = by.get(key) || { group: key, total: 0, wins: 0, revenue: 0, bids: 0 };
    a.total += r.total || 0;
    a.wins += r.wins || 0;
    a.revenue += r.revenue || 0;
    if (isNum(r.bids)) a.bids += r.bids;
    else if (isNum(r.losses)) a.bids += (r.wins || 0) + r.losses;
    else haveBids = false;
    by.set(key, a);
  }
  const out = [...by.values()].map((a) => ({
    ...a,
    rate: haveBids ? (a.bids ? (100 * a.wins) / a.bids : 0) : (a.total ? (100 * a.wins) / a.total : 0),
    ecpm: a.wins ? (a.revenue * 1000) / a.wins : null,
  }));
  out.sort((x, y) => y.total - x.total || y.revenue - x.revenue);
  return { rows: out, haveBids };
}

function renderBreakdown(testid, filterName, rows, emptyLabel) {
  const table = $(`[data-testid="${testid}"]`);
  const { rows: agg, haveBids } = aggregate(rows);
  const head = $(".rate-head", table);
  head.textContent = haveBids ? "Win rate" : "Wins / outcomes";
  head.title = haveBids ? "wins / bids" : "wins / all outcomes (including no-bids)";
  const body = $("tbody", table);
  body.replaceChildren();
  if (!agg.length) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No data" })));
    return;
  }
  const maxSpend = Math.max(...agg.map((a) => a.revenue), 0);
  for (const a of agg.slice(0, BREAKDOWN_ROWS)) {
    const name = a.group == null || a.group === "" ? emptyLabel : String(a.group);
    const cell = a.group == null || a.group === ""
      ? el("td", { text: name, class: "muted" })
      : el("td", {}, el("button", { type: "button", class: "link", text: name,
        title: `Filter on ${filterName} = ${name}`,
        onclick: () => { state.filters[filterName] = name; writeForm(state.filters);
          state.page = 1; loadAll(); } }));
    const bar = maxSpend > 0 ? (100 * a.revenue) / maxSpend : 0;
    body.append(el("tr", { "data-group": name }, cell,
      el("td", { class: "num", text: count(a.total) }),
      el("td", { class: "num", text: count(a.wins) }),
      el("td", { class: "num", text: pct(a.rate) }),
      el("td", { class: "num spend-cell", style: `--bar:${bar.toFixed(1)}%`, text: money(a.revenue) }),
      el("td", { class: "num", text: money(a.ecpm) })));
  }
  if (agg.length > BREAKDOWN_ROWS) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "muted",
      text: `and ${agg.length - BREAKDOWN_ROWS} more` })));
  }
}

// ---------- outcomes table ----------
function reasonText(o) {
  if (o.loss_reason != null) return coded(LOSS_REASONS, o.loss_reason);  // won: 0 · Bid won
  if (o.outcome === "nobid") return human(o.nobid_reason || "no bid");
  return DASH;
}

function outcomeRow(o) {
  const cells = [
    ["timestamp", isoToText(o.timestamp), o.timestamp],
    ["rid", o.rid ? `…${o.rid.slice(-8)}` : DASH, o.rid],   // rids share a time prefix
    ["imp_id", o.imp_id ?? DASH],
    ["user_id", o.user_id || "no user"],
    ["site", o.site_domain || o.app_bundle || o.domain || DASH, o.site_domain ? "site domain" : (o.app_bundle ? "app bundle" : "domain")],
    ["country", o.country || DASH],
    ["segment", o.segment || DASH],
    ["media_type", o.media_type || DASH],
    ["enriched", o.enriched ? "yes" : "no"],
    ["floor", money(o.floor)],
    ["bid_price", o.bid_price == null ? "no bid" : money(o.bid_price)],
    ["competitor_price", money(o.competitor_price)],
    ["win_price", money(o.win_price)],
    ["outcome", o.outcome || DASH],
    ["reason", reasonText(o)],
  ];
  const numeric = new Set(["floor", "bid_price", "competitor_price", "win_price"]);
  const tr = el("tr", { tabindex: 0, "data-rid": o.rid, "data-id": o.id,
    title: "Open this request's story" });
  for (const [col, text, title] of cells) {
    const cls = [numeric.has(col) ? "num" : "", col === "outcome" ? `badge-cell ${o.outcome}` : ""]
      .join(" ").trim();
    const td = el("td", { "data-col": col, class: cls || null, title: title || null });
    if (col === "outcome") td.append(el("span", { class: `badge ${o.outcome}`, text }));
    else td.textContent = text;
    tr.append(td);
  }
  const open = () => openStory(o.rid, tr);
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
  });
  return tr;
}

function renderTable(data) {
  const body = $("#outcomes-table tbody");
  body.replaceChildren(...(data.results || []).map(outcomeRow));
  const total = data.count || 0;
  const pages = Math.max(1, Math.ceil(total / state.pageSize));
  $("#page-info").textContent = `Page ${fmtCount.format(state.page)} of ${fmtCount.format(pages)}`
    + ` · ${count(total)} outcomes`;
  $("#page-prev").disabled = state.page <= 1;
  $("#page-next").disabled = !data.next && state.page >= pages;
  for (const b of document.querySelectorAll("button.sort")) {
    const key = b.dataset.order;
    const dir = state.ordering === key ? "ascending"
      : state.ordering === `-${key}` ? "descending" : null;
    const th = b.closest("th");
    if (dir) th.setAttribute("aria-sort", dir); else th.removeAttribute("aria-sort");
  }
}

async function loadTable() {
  const token = ++state.tableToken;
  const params = { ...state.filters, page: state.page, page_size: state.pageSize,
    ordering: state.ordering };
  let data;
  try {
    data = await api("outcomes/", params);
  } catch (e) {
    if (token !== state.tableToken) return;
    if (e.status === 404 && state.page > 1) {   // the page vanished (data or filters changed)
      state.page = 1;
      writeUrl();
      return loadTable();
    }
    throw e;
  }
  if (token !== state.tableToken) return;
  const pages = Math.max(1, Math.ceil((data.count || 0) / state.pageSize));
  if (state.page > pages) { state.page = pages; writeUrl(); return loadTable(); }
  renderTable(data);
}

// ---------- everything ----------
async function loadSeries() {
  const base = { ...state.filters };
  let hourly = singleDay();
  let rows = await api("outcomes/daily_stats/", hourly ? { ...base, group_by: "hour" } : base);
  if (!hourly && Array.isArray(rows) && rows.length === 1) {   // one day of data: show hours
    hourly = true;
    rows = await api("outcomes/daily_stats/", { ...base, group_by: "hour" });
  }
  return { rows: Array.isArray(rows) ? rows : [], hourly };
}

async function loadAll() {
  const token = ++state.loadToken;
  state.loading = true;
  writeUrl();
  $("#refresh").disabled = true;
  $("#refresh").setAttribute("aria-busy", "true");
  try {
    let stats;
    try {
      stats = await api("outcomes/stats/", state.filters);
    } catch (e) {
      if (token !== state.loadToken) return;
      if (e.status === 503) {        // no snapshot published yet: that is "no data", not an error
        clearCards(); setEmpty(true, "nodata"); showMessage(""); return;
      }
      throw e;
    }
    if (token !== state.loadToken) return;
    renderCards(stats);
    if (!stats.total_outcomes) {
      setEmpty(true, hasFilters() ? "filters" : "nodata");
      showMessage("");
      return;
    }
    setEmpty(false);
    renderWinsLosses(stats);
    const [series, bySite, bySegment, table] = await Promise.allSettled([
      loadSeries(),
      api("outcomes/daily_stats/", { ...state.filters, group_by: "site" }),
      api("outcomes/daily_stats/", { ...state.filters, group_by: "segment" }),
      loadTable(),
    ]);
    if (token !== state.loadToken) return;
    const problems = [];
    if (series.status === "fulfilled") renderSeries(series.value.rows, series.value.hourly);
    else problems.push(`charts: ${series.reason.message}`);
    if (bySite.status === "fulfilled") renderBreakdown("breakdown-site", "site_domain", bySite.value || [], "(apps, no site)");
    else problems.push(`site breakdown: ${bySite.reason.message}`);
    if (bySegment.status === "fulfilled") renderBreakdown("breakdown-segment", "segment", bySegment.value || [], "(no segment)");
    else problems.push(`segment breakdown: ${bySegment.reason.message}`);
    if (table.status === "rejected") problems.push(`outcomes: ${table.reason.message}`);
    showMessage(problems.length ? `Some data could not be loaded — ${problems.join("; ")}` : "");
  } catch (e) {
    if (token === state.loadToken) {
      showMessage(e.status === 422 ? `Invalid filter — ${e.message}` : `Could not load the data — ${e.message}`);
    }
  } finally {
    if (token === state.loadToken) {
      state.loading = false;
      $("#refresh").disabled = false;
      $("#refresh").removeAttribute("aria-busy");
      document.body.dataset.loaded = String(token);   // lets tests wait for a finished load
    }
  }
}

async function changePage(delta) {
  state.page = Math.max(1, state.page + delta);
  writeUrl();
  try { await loadTable(); showMessage(""); } catch (e) { showMessage(`Could not load the outcomes — ${e.message}`); }
  document.body.dataset.page = String(state.page);
}

// ---------- request story ----------
function dl(pairs) {
  const list = el("dl", { class: "kv" });
  for (const [k, v] of pairs) list.append(el("dt", { text: k }), el("dd", { text: v }));
  return list;
}

function renderStory(s) {
  const body = $("#story-body");
  body.replaceChildren();
  const c = s.context || {};
  const p = s.profile || {};
  body.append(
    el("p", { class: "mono", "data-testid": "story-rid", text: s.rid }),
    dl([["Request id", s.request_id ?? DASH], ["Received", isoToText(s.received_at)]]),
    el("h3", { text: "Context" }),
    dl([
      ["Site", c.site_domain || DASH], ["App", c.app_bundle || DASH],
      ["Publisher", c.publisher_id || DASH], ["Device", coded(DEVICE_TYPES, c.device_type)],
      ["Country", c.country || DASH], ["User", c.user_id || "no user"],
      ["Auction type", coded(AUCTION_TYPES, c.auction_type)],
    ]),
    el("h3", { text: "Profile" }),
    dl([["Status", human(p.status)], ["Enriched", p.enriched ? "yes" : "no"],
      ["Segment", p.segment || DASH]]),
    el("h3", { text: `Impressions (${(s.imps || []).length})` }),
  );
  for (const imp of s.imps || []) {
    const a = imp.auction || {};
    const bid = imp.bid ? `${money(imp.bid.price)} CPM (creative ${imp.bid.crid || DASH})`
      : `no bid — ${human(imp.nobid_reason || "no bid")}`;
    const floorOrig = imp.bidfloor == null ? DASH
      : `${imp.bidfloor} ${imp.bidfloorcur || "USD"}`;
    const loss = imp.loss_reason == null ? DASH
      : `${imp.loss_reason} · ${imp.loss_reason_text || LOSS_REASONS[imp.loss_reason] || "unknown"}`;
    body.append(el("section", { class: `imp ${imp.outcome || ""}`, "data-testid": "story-imp",
      "data-imp-id": imp.imp_id },
    el("h4", {}, `Imp ${imp.imp_id} · ${imp.media_type || DASH} `,
      el("span", { class: `badge ${imp.outcome}`, text: imp.outcome || DASH })),
    dl([
      ["Bid", bid],
      ["Floor", `${money(imp.floor)} (sent as ${floorOrig})`],
      ["Auction type", coded(AUCTION_TYPES, a.type)],
      ["Auction floor", money(a.floor)],
      ["Competing price", money(a.competing_price)],
      ["Clearing price", money(a.clearing_price)],
      ["Outcome", imp.outcome || DASH],
      ["Loss reason", loss],
    ])));
  }
}

async function openStory(rid, trigger) {
  if (!rid) return;
  const panel = $("#story");
  state.storyRid = rid;
  state.storyTrigger = trigger || null;
  for (const r of document.querySelectorAll("#outcomes-table tr.selected")) r.classList.remove("selected");
  if (trigger) trigger.classList.add("selected");
  $("#story-body").replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  panel.hidden = false;
  panel.dataset.rid = rid;
  panel.removeAttribute("data-loaded");
  panel.focus();
  try {
    const story = await api(`requests/${encodeURIComponent(rid)}/`);
    if (state.storyRid !== rid) return;
    renderStory(story);
  } catch (e) {
    if (state.storyRid !== rid) return;
    $("#story-body").replaceChildren(el("p", { class: "message", role: "alert",
      text: e.status === 404 ? "This request is not in the current snapshot."
        : `Could not load the request — ${e.message}` }));
  }
  panel.dataset.loaded = rid;
}

function closeStory() {
  const panel = $("#story");
  if (panel.hidden) return;
  panel.hidden = true;
  state.storyRid = null;
  for (const r of document.querySelectorAll("#outcomes-table tr.selected")) r.classList.remove("selected");
  if (state.storyTrigger && document.contains(state.storyTrigger)) state.storyTrigger.focus();
  state.storyTrigger = null;
}

// ---------- date presets ----------
function isoDay(d) { return d.toISOString().slice(0, 10); }

function applyPreset(preset) {
  const form = $("#filters");
  if (preset === "all") {
    form.elements.date_from.value = "";
    form.elements.date_to.value = "";
  } else {
    // Relative to the newest data (X-Data-As-Of), not to the wall clock.
    const ref = state.lastAsOf ? new Date(state.lastAsOf) : new Date();
    const end = Number.isNaN(ref.getTime()) ? new Date() : ref;
    const start = new Date(end.getTime() - (Number(preset) - 1) * 86400000);
    form.elements.date_from.value = isoDay(start);
    form.elements.date_to.value = isoDay(end);
  }
  applyFilters();
}

function applyFilters() {
  const f = readForm();
  if (f.date_from && f.date_to && f.date_from > f.date_to) {
    showMessage("The start date is after the end date.");
    return;
  }
  if (f.min_price && f.max_price && Number(f.min_price) > Number(f.max_price)) {
    showMessage("The minimum bid is above the maximum bid.");
    return;
  }
  state.filters = f;
  state.page = 1;
  loadAll();
}

// ---------- wiring ----------
let timer = null;
function schedule() {
  clearInterval(timer);
  timer = null;
  if ($("#auto-refresh").checked) {
    timer = setInterval(() => { if (!document.hidden && !state.loading) loadAll(); }, REFRESH_MS);
  }
}

function init() {
  readUrl();
  writeForm(state.filters);
  const sizes = $("#page-size");
  if (![...sizes.options].some((o) => o.value === String(state.pageSize))) {
    sizes.append(el("option", { text: String(state.pageSize) }));
  }
  sizes.value = String(state.pageSize);
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  $("#clear-filters").addEventListener("click", () => {
    writeForm({}); state.filters = {}; state.page = 1; loadAll();
  });
  for (const b of document.querySelectorAll("[data-preset]")) {
    b.addEventListener("click", () => applyPreset(b.dataset.preset));
  }
  $("#refresh").addEventListener("click", () => { loadAll(); schedule(); });
  $("#auto-refresh").addEventListener("change", schedule);
  $("#page-prev").addEventListener("click", () => changePage(-1));
  $("#page-next").addEventListener("click", () => changePage(1));
  $("#page-size").addEventListener("change", (e) => {
    state.pageSize = Number(e.target.value); state.page = 1; writeUrl(); changePage(0);
  });
  for (const b of document.querySelectorAll("button.sort")) {
    b.addEventListener("click", () => {
      const key = b.dataset.order;
      state.ordering = state.ordering === `-${key}` ? key : `-${key}`;
      state.page = 1;
      writeUrl();
      changePage(0);
    });
  }
  $("#story-close").addEventListener("click", closeStory);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeStory(); });
  if (!chartsAvailable()) showMessage("The charting library did not load; charts are hidden.");
  loadAll();
  schedule();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
