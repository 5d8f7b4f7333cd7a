// The operator page: polls GET /admin/status with the admin token and draws it.
// Every value from the gateway goes into the page as text (textContent, text nodes,
// setAttribute on fixed attribute names); the page never parses HTML from data.
"use strict";

(() => {
  const POLL_MS = 2000;
  const HISTORY = 60; // points per sparkline: two minutes at one poll per 2 s
  const TOKEN_KEY = "gateway-admin-token";
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let previous = null; // {at: ms, counters: Map} of the last poll
  let counters = new Map(); // counter key -> running total, this poll
  const series = new Map(); // counter key -> recent rates

  // ---- DOM helpers (text only) -------------------------------------------------
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmt(value, digits = 3) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : value.toFixed(digits);
    }
    if (typeof value === "boolean") return value ? "yes" : "no";
    return String(value);
  }

  function pct(share) {
    return share === null || share === undefined || Number.isNaN(share)
      ? "—" : `${(share * 100).toFixed(1)}%`;
  }

  function table(headers, rows) {
    const head = el("tr", null, ...headers.map((h) => el("th", null, h)));
    const body = el("tbody");
    for (const row of rows) body.append(row);
    return el("table", null, el("thead", null, head), body);
  }

  function cell(value, className) {
    return el("td", className || (typeof value === "number" ? "num" : null), fmt(value));
  }

  function stateBadge(state) {
    return el("span", `badge breaker-state state-${String(state).replace(/[^a-z_]/g, "")}`, state);
  }

  // ---- rates and sparklines -----------------------------------------------------
  // Counters are running totals; two polls make a rate. A counter that went down (the
  // gateway restarted) restarts its series.
  function rate(key, now) {
    if (previous === null) return null;
    const prior = previous.counters.get(key);
    const current = counters.get(key);
    if (prior === undefined || current === undefined || current < prior) return null;
    return (current - prior) / ((now - previous.at) / 1000);
  }

  function track(key, value) {
    counters.set(key, value);
  }

  function push(key, value) {
    if (value === null) return;
    const points = series.get(key) || [];
    points.push(value);
    if (points.length > HISTORY) points.shift();
    series.set(key, points);
  }

  function sparkline(key) {
    const points = series.get(key) || [];
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 24");
    svg.setAttribute("aria-hidden", "true");
    if (points.length > 1) {
      const top = Math.max(...points, 1e-9);
      const step = 120 / (HISTORY - 1);
      const start = 120 - step * (points.length - 1);
      const coords = points.map((v, i) =>
        `${(start + i * step).toFixed(1)},${(22 - (v / top) * 20).toFixed(1)}`);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", coords.join(" "));
      svg.append(line);
    }
    return svg;
  }

  function rateView(label, key, unit = "/s", scale = 1) {
    const points = series.get(key) || [];
    const last = points.length ? points[points.length - 1] * scale : null;
    const shown = last === null ? "—" : `${last.toFixed(last >= 10 ? 0 : 2)}${unit}`;
    return el("span", "rate", el("span", "muted", label), el("span", "value", shown), sparkline(key));
  }

  // ---- polling --------------------------------------------------------------------
  function showMessage(text) {
    $("message").textContent = text;
    $("message").hidden = false;
  }

  function showLogin() {
    $("login").hidden = false;
    $("dashboard").hidden = true;
    $("forget").hidden = true;
    $("refreshed").textContent = "not connected";
    $("token").focus();
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule() {
    stop();
    timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showLogin();
      return;
    }
    let response;
    try {
      response = await fetch("/admin/status", {
        headers: { authorization: `Bearer ${token}` },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      showMessage(`Cannot reach the gateway (${error.message}); retrying.`);
      schedule();
      return;
    }
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => ({}));
      sessionStorage.removeItem(TOKEN_KEY);
      stop();
      const why = body.error ? `: ${body.error}` : "";
      showMessage(response.status === 401
        ? `Refused: the gateway did not accept this admin token (401${why}). Enter it again.`
        : `Refused: the admin API is off (403${why}).`);
      showLogin();
      return;
    }
    if (!response.ok) {
      showMessage(`/admin/status answered ${response.status}; retrying.`);
      schedule();
      return;
    }
    let status;
    try {
      status = await response.json();
    } catch (error) {
      showMessage(`/admin/status sent something that is not JSON (${error.message}); retrying.`);
      schedule();
      return;
    }
    $("message").hidden = true;
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("forget").hidden = false;
    render(status);
    schedule();
  }

  // ---- rendering --------------------------------------------------------------------
  function render(status) {
    const now = performance.now();
    counters = new Map();
    const models = Object.entries(status.models || {});
    for (const [name, model] of models) collectModel(name, model);
    collectStore(status.feature_store);
    for (const key of counters.keys()) push(key, rate(key, now));
    for (const key of series.keys()) if (!counters.has(key)) series.delete(key);

    const events = status.events || [];
    $("models").replaceChildren(...models.map(([name, model]) => modelCard(name, model, events)));
    $("feature-store").replaceChildren(storeView(status.feature_store));
    renderEvents(events);
    const reload = (status.config && status.config.reload) || {};
    $("refreshed").textContent =
      `refreshed ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s · ` +
      `config reloads: ${fmt(reload.applied)} applied, ${fmt(reload.rejected)} refused`;
    previous = { at: now, counters };
  }

  function sum(object) {
    return Object.values(object || {}).reduce((a, b) => a + b, 0);
  }

  function upstreams(model) {
    return [["primary", model.primary], ["canary", model.canary]].filter(([, u]) => u);
  }

  function collectModel(name, model) {
    const traffic = model.traffic || {};
    const requests = traffic.requests || {};
    track(`${name}/requests`, sum(requests));
    track(`${name}/errors`, sum(requests) - (requests.ok || 0));
    for (const [rung, count] of Object.entries(traffic.served_by || {})) {
      track(`${name}/rung/${rung}`, count);
    }
    for (const [, upstream] of upstreams(model)) {
      track(`${name}/${upstream.upstream}/rejected`, upstream.bulkhead.rejected);
      track(`${name}/${upstream.upstream}/retries`, upstream.retry_budget.retries);
    }
  }

  function collectStore(store) {
    if (!store) return;
    track("store/hits", store.cache_lookups.hit);
    track("store/lookups", sum(store.cache_lookups));
    track("store/values", sum(store.values_served));
    track("store/values_cache", store.values_served.cache);
  }

  // The rung that served the most in the last poll interval; without traffic, none.
  function servingNow(name, model) {
    let best = null;
    let bestRate = 0;
    for (const rung of Object.keys((model.traffic || {}).served_by || {})) {
      const points = series.get(`${name}/rung/${rung}`) || [];
      const last = points.length ? points[points.length - 1] : 0;
      if (last > bestRate) {
        best = rung;
        bestRate = last;
      }
    }
    return best;
  }

  function modelCard(name, model, events) {
    const now = servingNow(name, model);
    const head = el("div", "card-head",
      el("h3", null, name),
      el("span", `badge ${model.degraded ? "degraded" : "ok"}`, model.degraded ? "degraded" : "ok"),
      el("span", "serving-now", "serving now: ", el("strong", null, now || "no traffic")),
      el("span", "muted", `can serve: ${(model.serving_rungs || []).join(", ") || "nothing"}`));
    const card = el("div", "card model");
    card.dataset.model = name;
    card.append(head);
    if ((model.why || []).length) card.append(el("ul", "why", ...model.why.map((w) => el("li", null, w))));

    const rates = el("div", null,
      rateView("requests", `${name}/requests`),
      rateView("errors", `${name}/errors`));
    for (const rung of Object.keys((model.traffic || {}).served_by || {})) {
      rates.append(rateView(`served by ${rung}`, `${name}/rung/${rung}`));
    }
    for (const [, u] of upstreams(model)) {
      rates.append(rateView(`${u.upstream} retries`, `${name}/${u.upstream}/retries`),
        rateView(`${u.upstream} bulkhead rejections`, `${name}/${u.upstream}/rejected`));
    }
    card.append(rates);

    const grid = el("div", "grid");
    grid.append(el("div", null, el("h4", null, "Breakers"), breakerTable(model),
      el("h4", null, "Recent transitions"), transitions(name, events)));
    grid.append(el("div", null, el("h4", null, "Bulkhead and retry budget"), guardTable(model),
      el("h4", null, "Canary"), canaryView(model)));
    card.append(grid);
    card.append(el("h4", null, "Shadows"), shadowView(model.shadows || []));
    card.append(el("h4", null, "Data quality"), qualityView(model.data_quality));
    return card;
  }

  function breakerTable(model) {
    const rows = [];
    for (const [role, upstream] of upstreams(model)) {
      const endpoints = upstream.endpoints || [{ name: upstream.upstream, breaker: upstream.breaker }];
      for (const endpoint of endpoints) {
        const b = endpoint.breaker;
        rows.push(el("tr", null, el("td", null, role), el("td", null, endpoint.name),
          el("td", null, stateBadge(b.state)), cell(b.trip_reason),
          cell(b.state === "open" ? b.retry_in_seconds : null)));
      }
    }
    return table(["role", "upstream", "state", "why it opened", "retry in s"], rows);
  }

  function transitions(name, events) {
    const moves = events.filter((e) => e.kind === "breaker" && e.model === name).slice(-5).reverse();
    if (!moves.length) return el("p", "muted", "none recorded");
    return el("ul", "transitions", ...moves.map((e) =>
      el("li", null, `${new Date(e.at * 1000).toLocaleTimeString()} ${e.detail}`)));
  }

  function guardTable(model) {
    const rows = upstreams(model).map(([, u]) => el("tr", null,
      el("td", null, u.upstream),
      cell(`${u.bulkhead.active} of ${u.bulkhead.max_concurrent}`, "num"),
      cell(`${u.bulkhead.queued} of ${u.bulkhead.max_queue}`, "num"),
      cell(u.bulkhead.rejected), cell(u.retry_budget.balance), cell(u.retry_budget.retries),
      cell(u.retry_budget.refused)));
    return table(["upstream", "in use", "queued", "rejected", "retry budget", "retries",
      "refused"], rows);
  }

  function canaryView(model) {
    const routing = model.routing || {};
    const box = el("div");
    if (!routing.canary) {
      box.append(el("p", "muted", "no canary"));
    } else {
      box.append(el("p", null, `${routing.canary}: `, el("strong", "canary-weight", `${fmt(routing.canary_weight_percent)}%`),
        ` of traffic, sticky on ${routing.sticky_key || routing.sticky_header || "nothing (random)"}`));
    }
    const rollout = model.rollout;
    if (rollout) {
      box.append(el("p", null, "rollout: ", el("strong", null, fmt(rollout.state)),
        ` · step ${fmt(rollout.step)} · weight ${fmt(rollout.weight)}%`,
        rollout.reason ? ` · ${rollout.reason}` : null));
      if (rollout.last_checks) box.append(el("pre", "muted", JSON.stringify(rollout.last_checks, null, 1)));
    }
    return box;
  }

  function shadowView(shadows) {
    if (!shadows.length) return el("p", "muted", "no shadows");
    const rows = shadows.map((s) => {
      const c = s.comparison || {};
      return el("tr", null, el("td", null, s.upstream), cell(s.sample_percent),
        el("td", null, stateBadge(s.breaker)), cell(s.sent), cell(s.failed), cell(s.dropped),
        cell(c.pairs), cell(pct(c.label_agreement), "num"), cell(c.mean_abs_diff),
        cell(c.max_abs_diff), cell(c.psi));
    });
    return table(["shadow", "sample %", "breaker", "sent", "failed", "dropped", "pairs",
      "label agreement", "mean |diff|", "max |diff|", "psi"], rows);
  }

  const QUALITY_COLUMNS = ["psi", "out_of_range_share", "null_share", "unseen_category_share",
    "default_share", "cache_share", "stale_share"];

  function qualityView(quality) {
    if (!quality) return el("p", "muted", "data-quality monitors off");
    const row = (name, f, extra) => el("tr", null, el("td", null, name),
      el("td", `quality-status status-${String(f.status).replace(/[^a-z]/g, "")}`, f.status),
      ...QUALITY_COLUMNS.map((k) => cell(f[k])), cell(f.window_count), cell(extra),
      el("td", "muted", (f.reasons || []).join("; ")));
    const rows = Object.entries(quality.inputs || {}).map(([name, f]) =>
      row(name, f, f.out_of_distribution_total));
    if (quality.score && quality.score.status) rows.push(row("score", quality.score, null));
    const box = el("div", "quality");
    const mitigation = quality.mitigation || {};
    if (mitigation.active) box.append(el("ul", "why", el("li", null, `requests sent to the fallback: ${mitigation.reason}`)));
    box.append(table(["input", "status", "psi", "out of range", "null", "unseen", "default",
      "cache", "stale", "window", "out of dist.", "why"], rows));
    return box;
  }

  function storeView(store) {
    if (!store) return el("p", "muted", "no feature store configured");
    const total = sum(store.cache_lookups);
    const served = sum(store.values_served);
    const lookups = series.get("store/lookups") || [];
    const hits = series.get("store/hits") || [];
    const last = (points) => (points.length ? points[points.length - 1] : null);
    const lookupRate = last(lookups);
    const interval = lookupRate ? last(hits) / lookupRate : null;
    return el("div", "card",
      el("div", "card-head", el("span", null, "breaker "), stateBadge(store.breaker.state),
        el("span", "muted", store.url)),
      el("p", null,
        `cache: ${fmt(store.cache.entries)} of ${fmt(store.cache.max_entries)} entries · ` +
        `cache hit share: ${pct(interval)} now, ${pct(total ? store.cache_lookups.hit / total : null)} ` +
        `since start (${fmt(total)} lookups) · values served from the cache: ` +
        `${pct(served ? store.values_served.cache / served : null)}`),
      el("div", null, rateView("lookups", "store/lookups"), rateView("hits", "store/hits"),
        rateView("values", "store/values"), rateView("from cache", "store/values_cache")));
  }

  function renderEvents(events) {
    const rows = events.slice().reverse().map((e) => el("tr", null,
      el("td", null, new Date(e.at * 1000).toLocaleTimeString()), el("td", null, e.kind),
      el("td", null, e.model || "—"), el("td", null, e.detail)));
    if (!rows.length) rows.push(el("tr", null, el("td", "muted", "none yet")));
    $("events").tBodies[0].replaceChildren(...rows);
  }

  // ---- start ----------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      poll();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      stop();
      $("message").hidden = true;
      showLogin();
    });
    poll();
  });
})();
