// The live inventory dashboard: plain modules, no dependencies, nothing fetched from another
// host. The admin token stays in sessionStorage and travels only as a bearer header; the admin
// event stream is read with fetch() and a stream reader, because EventSource cannot send one.

const TOKEN_KEY = "stockcart.admin-token";
const $ = (id) => document.getElementById(id);
const state = { rows: new Map(), sort: { key: "sku", dir: 1 }, lastEventId: null, orders: [] };

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (res.status === 401 || res.status === 403) throw new AuthError(res.status);
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}
class AuthError extends Error {}

async function all(path) {
  const items = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    items.push(...page.items);
    if (!page.next || page.items.length === 0) return items;
    after = page.next;
  }
}

// ---- stock table -------------------------------------------------------------------------
const FIELDS = ["on_hand", "reserved", "available", "status", "days_of_cover"];

function rowFor(item) {
  const tr = document.createElement("tr");
  tr.dataset.sku = item.sku;
  const cell = (field, text) => {
    const td = document.createElement("td");
    if (field) td.dataset.field = field;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  };
  cell(null, item.sku);
  cell(null, item.name ?? "");
  for (const f of FIELDS) cell(f, "");
  state.rows.set(item.sku, { tr, item: { ...item } });
  paint(item.sku, item, false);
  return tr;
}

function paint(sku, changes, highlight) {
  const row = state.rows.get(sku);
  if (!row) return;
  Object.assign(row.item, changes);
  for (const f of FIELDS) {
    if (!(f in changes)) continue;
    const td = row.tr.querySelector(`td[data-field="${f}"]`);
    const value = row.item[f];
    if (f === "status") {
      td.replaceChildren(Object.assign(document.createElement("span"), { className: `badge ${value}`, textContent: value }));
      td.dataset.value = value;
    } else {
      td.textContent = value === null || value === undefined ? "—" : (f === "days_of_cover" ? Number(value).toFixed(1) : value);
    }
    if (highlight) { td.classList.remove("changed"); void td.offsetWidth; td.classList.add("changed"); }
  }
  row.tr.className = row.item.status === "out" ? "out" : row.item.status === "low" ? "low" : "";
}

function render() {
  const q = $("search").value.trim().toLowerCase();
  const { key, dir } = state.sort;
  const rows = [...state.rows.values()]
    .filter((r) => !q || r.item.sku.toLowerCase().includes(q) || (r.item.name ?? "").toLowerCase().includes(q))
    .sort((a, b) => {
      const x = a.item[key] ?? -Infinity, y = b.item[key] ?? -Infinity;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  $("stock").tBodies[0].replaceChildren(...rows.map((r) => r.tr));
}

async function loadStock() {
  const items = await all("/v1/admin/reports/stock");
  state.rows.clear();
  items.forEach(rowFor);
  render();
}

// ---- charts (SVG drawn by hand: a few dozen bars need no library) ------------------------
const SVG = "http://www.w3.org/2000/svg";
function bar(svg, x, y, w, h, cls, title) {
  const r = document.createElementNS(SVG, "rect");
  Object.entries({ x, y, width: Math.max(w, 0.5), height: Math.max(h, 0) }).forEach(([k, v]) => r.setAttribute(k, v));
  r.setAttribute("class", cls);
  const t = document.createElementNS(SVG, "title");
  t.textContent = title;
  r.appendChild(t);
  svg.appendChild(r);
}
function label(svg, x, y, text) {
  const t = document.createElementNS(SVG, "text");
  t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "10");
  t.textContent = text;
  svg.appendChild(t);
}

async function loadCharts() {
  const from = new Date(Date.now() - 3 * 86400e3).toISOString();
  const series = (await api(`/v1/admin/reports/movements?bucket=hour&from=${encodeURIComponent(from)}`)).items;
  const svg = $("chart-movements");
  svg.replaceChildren();
  const max = Math.max(1, ...series.map((b) => Math.max(b.received, b.sold, b.shipped)));
  const w = 600 / Math.max(series.length, 1);
  series.forEach((b, i) => {
    ["received", "sold", "shipped"].forEach((k, j) => {
      const h = (b[k] / max) * 140;
      bar(svg, i * w + (j * w) / 3, 150 - h, w / 3, h, k, `${b.bucket_start} ${k}: ${b[k]}`);
    });
  });
  if (series.length === 0) label(svg, 10, 80, "no movements yet");

  const top = (await api("/v1/admin/reports/top?by=revenue&limit=10")).items;
  const svgTop = $("chart-top");
  svgTop.replaceChildren();
  const maxRev = Math.max(1, ...top.map((t) => t.revenue.amount));
  top.forEach((t, i) => {
    const w2 = (t.revenue.amount / maxRev) * 430;
    bar(svgTop, 160, i * 15 + 2, w2, 12, `abc-${t.abc}`, `${t.sku}: ${t.units} units`);
    label(svgTop, 2, i * 15 + 12, `${t.abc} ${t.sku}`);
  });
  if (top.length === 0) label(svgTop, 10, 80, "no sales yet");

  const r = await api("/v1/admin/reports/reservations");
  const age = (s) => (s === null || s === undefined ? "—" : `${Math.round(s)} s`);
  const cells = [
    ["open orders", r.open_orders], ["units held", r.units], ["age p50", age(r.age_p50_seconds)],
    ["age p90", age(r.age_p90_seconds)], ["expiring within 5 min", r.expiring_within_5m],
    ["oldest", r.oldest_at ? new Date(r.oldest_at).toLocaleTimeString() : "—"],
  ].map(([k, v]) => {
    const div = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = v;
    div.append(b, k);
    return div;
  });
  $("reservations").replaceChildren(...cells);
}

// ---- orders and webhooks ------------------------------------------------------------------
function renderOrders() {
  $("orders").replaceChildren(...state.orders.slice(0, 10).map((o) => {
    const li = document.createElement("li");
    li.dataset.order = o.id;
    li.textContent = `${o.id.slice(0, 8)} · ${o.status} · ${(o.total.amount / 100).toFixed(2)} ${o.total.currency}`;
    return li;
  }));
}
async function loadOrders() {
  state.orders = (await api("/v1/admin/orders?limit=10")).items;
  renderOrders();
}
async function loadWebhooks() {
  const hooks = (await api("/v1/admin/webhooks?limit=50")).items;
  const items = await Promise.all(hooks.map(async (h) => {
    const failed = (await api(`/v1/admin/webhooks/${h.id}/deliveries?status=failed&limit=3`)).items;
    const li = document.createElement("li");
    li.textContent = `${h.url} · ${h.status}${h.disabled_reason ? ` (${h.disabled_reason})` : ""}`;
    if (failed.length) {
      li.className = "failing";
      li.title = failed.map((d) => `${d.event_type}: ${d.last_error ?? d.last_status_code}`).join("\n");
      li.textContent += ` · last failures: ${failed.length}`;
    }
    return li;
  }));
  $("webhooks").replaceChildren(...(items.length ? items : [Object.assign(document.createElement("li"), { textContent: "none registered" })]));
}

// ---- the live stream -----------------------------------------------------------------------
// Charts follow the stream too, but at most once every two seconds: they are reports.
let chartsDue = null;
function chartsSoon() {
  if (chartsDue) return;
  chartsDue = setTimeout(() => { chartsDue = null; loadCharts().catch(() => {}); }, 2000);
}

function apply(type, event) {
  const d = event.data;
  chartsSoon();
  if (type === "stock.changed") {
    paint(d.sku, { on_hand: d.on_hand, reserved: d.reserved, available: d.available, status: d.status }, true);
  } else if (type.startsWith("stock.")) {
    paint(d.sku, { available: d.available, status: d.status }, true);
  } else if (type.startsWith("order.")) {
    state.orders = [d.order, ...state.orders.filter((o) => o.id !== d.order.id)];
    renderOrders();
  }
}

function setStream(live) {
  const el = $("stream");
  el.dataset.stream = live ? "live" : "reconnecting";
  el.textContent = live ? "live" : "reconnecting…";
}

async function follow() {
  for (;;) {
    try {
      const headers = { Authorization: `Bearer ${token()}` };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const res = await fetch("/v1/admin/events/stream", { headers });
      if (res.status === 401 || res.status === 403) return signOut("The token was refused.");
      if (!res.ok || !res.body) throw new Error(`stream: ${res.status}`);
      setStream(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id = null, type = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (id) state.lastEventId = id;
          if (type === "reset") { await Promise.all([loadStock(), loadOrders()]); continue; }
          if (data) apply(type, JSON.parse(data));
        }
      }
    } catch (e) {
      if (!token()) return;
    }
    setStream(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- sign in -------------------------------------------------------------------------------
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  const err = $("sign-in-error");
  err.hidden = !message;
  err.textContent = message ?? "";
}

async function start() {
  try {
    await loadStock();
  } catch (e) {
    return signOut(e instanceof AuthError ? "That is not the admin token." : `The dashboard could not load: ${e.message}`);
  }
  $("sign-in").hidden = true;
  $("sign-in-error").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  follow();
  await Promise.allSettled([loadCharts(), loadOrders(), loadWebhooks()]);
  setInterval(() => { loadCharts().catch(() => {}); loadWebhooks().catch(() => {}); }, 30000);
}

$("sign-in").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  start();
});
$("sign-out").addEventListener("click", () => signOut());
$("search").addEventListener("input", render);
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    render();
  });
}
if (token()) start(); else signOut();
