// feedcdc data management dashboard. Plain JavaScript, no framework, no
// network access beyond this dashboard's own /api. Every backend string is
// rendered with textContent, never as HTML.
"use strict";

(function () {
  const body = document.body;
  const refreshMs = Math.max(1000, parseInt(body.dataset.refreshMs, 10) || 5000);
  const actionsEnabled = body.dataset.actionsEnabled === "true";
  // On a non-loopback listener (or when configured) the item endpoints,
  // which return full item payloads, need the token too.
  const itemsNeedToken = body.dataset.itemsNeedToken === "true";
  const TOKEN_KEY = "feedcdc.dashboard.token";
  const $ = (id) => document.getElementById(id);

  const state = {
    itemsOffset: 0,
    itemsLimit: 50,
    itemsTotal: 0,
    itemsSeq: 0,
    feeds: [],
    detail: null, // {feed, id, sku}
    detailOpener: null, // the row that opened the panel (focus returns to it)
    refreshing: false,
    refreshCount: 0,
  };

  // ---------- helpers ----------
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (k === "class") e.className = v;
        else if (k.startsWith("data-")) e.setAttribute(k, String(v));
        else e.setAttribute(k, String(v));
      }
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // emptyRow is the single row a table shows when it has nothing to list.
  function emptyRow(table, cols, text) {
    const tr = el("tr", { class: "empty", "data-empty": table });
    tr.appendChild(el("td", { colspan: String(cols) }, text));
    return tr;
  }

  // wrapAtSeparators fills node with text, allowing line breaks after the
  // separators of long codes and paths (_ . / : - = , ;) so that they wrap
  // there instead of mid-word. Only text nodes and <wbr> are created.
  function wrapAtSeparators(node, text) {
    node.replaceChildren();
    const parts = String(text).split(/(?<=[_./:=,;-])/);
    parts.forEach((p, i) => {
      node.appendChild(document.createTextNode(p));
      if (i < parts.length - 1) node.appendChild(document.createElement("wbr"));
    });
    return node;
  }

  function fmtInt(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function fmtDuration(ms) {
    ms = Math.max(0, Math.round(ms));
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    const m = s / 60;
    if (m < 60) return Math.floor(m) + " min " + Math.floor(s % 60) + " s";
    const h = m / 60;
    if (h < 48) return Math.floor(h) + " h " + Math.floor(m % 60) + " min";
    return Math.floor(h / 24) + " d " + Math.floor(h % 24) + " h";
  }

  function fmtTime(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return "never";
    const ago = Date.now() - d.getTime();
    return d.toLocaleString() + " (" + fmtDuration(ago) + " ago)";
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { "Accept": "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.auth || itemsNeedToken) {
      const t = token();
      if (t) headers["Authorization"] = "Bearer " + t;
    }
    const resp = await fetch(path, {
      method: opts.method || "GET",
      headers: headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      cache: "no-store",
      credentials: "omit",
    });
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
    }
    if (!resp.ok) {
      const err = new Error((data && data.error) || resp.status + " " + resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function showError(msg) {
    const b = $("error-banner");
    if (msg) {
      b.textContent = msg;
      b.hidden = false;
    } else {
      b.textContent = "";
      b.hidden = true;
    }
  }

  function setResult(kind, msg) {
    const r = $("action-result");
    r.dataset.state = kind;
    r.className = kind;
    r.textContent = msg;
  }

  // ---------- overview ----------
  // lastVerifyCell shows a feed's last feedcdc verify: when it finished,
  // items checked, drift found and repaired, its error, or "never".
  function lastVerifyCell(lv) {
    if (!lv) {
      return el("td", { "data-field": "last_verify", "data-value": "" }, "never");
    }
    const td = el("td", {
      "data-field": "last_verify", "data-value": lv.finished_at || "",
      "data-checked": lv.checked || 0, "data-drift": lv.drift || 0, "data-repaired": lv.repaired || 0,
      "data-error": lv.error || "",
      class: lv.error || (lv.drift || 0) > (lv.repaired || 0) ? "warn" : "",
    });
    td.appendChild(el("div", null, fmtTime(lv.finished_at)));
    let what;
    if (lv.error) {
      what = "failed: " + lv.error;
    } else if (lv.drift > 0) {
      what = fmtInt(lv.checked) + " checked, drift " + fmtInt(lv.drift) + ", repaired " + fmtInt(lv.repaired);
    } else {
      what = fmtInt(lv.checked) + " checked, no drift";
    }
    td.appendChild(el("div", { class: "muted" }, what + (lv.elapsed ? " (" + lv.elapsed + ")" : "")));
    return td;
  }

  // The high-availability block (ha.enabled only): role, instance, epoch,
  // changelog lag and last takeover.
  function renderHA(h) {
    const el = $("ha-status");
    if (!h) {
      el.hidden = true;
      el.dataset.role = "";
      return;
    }
    el.hidden = false;
    el.dataset.role = h.role;
    el.dataset.instance = h.instance || "";
    el.dataset.epoch = String(h.epoch || 0);
    el.dataset.changelogLag = String(h.changelog_lag || 0);
    el.dataset.lastTakeover = h.last_takeover || "";
    el.dataset.takeoverMs = String(h.takeover_ms || 0);
    el.className = "pill " + (h.role === "active" ? "ok" : "warn");
    el.textContent = "HA " + h.role + (h.instance ? " · " + h.instance : "") + " · epoch " + (h.epoch || 0) +
      " · changelog lag " + fmtInt(h.changelog_lag) + " records · last takeover " +
      (h.last_takeover ? fmtTime(h.last_takeover) + ", took " + fmtDuration(h.takeover_ms || 0) : "never");
  }

  function renderOverview(ov) {
    const src = $("source-status");
    src.dataset.connected = String(!!ov.source.connected);
    src.className = "pill " + (ov.source.connected ? "ok" : "bad");
    src.textContent = ov.source.connected
      ? "source connected" + (ov.source.address ? " · " + ov.source.address : "")
      : "source disconnected" + (ov.source.error ? ": " + ov.source.error : "");
    if (ov.source.unavailable) {
      src.className = "pill bad";
      src.dataset.unavailable = "true";
      src.textContent = ov.source.unavailable;
    } else {
      delete src.dataset.unavailable;
    }
    const lag = $("source-lag");
    lag.dataset.value = String(ov.source.lag_ms || 0);
    lag.dataset.state = ov.source.lag_state || "";
    lag.textContent = "lag " + fmtDuration(ov.source.lag_ms || 0) + (ov.source.lag_state ? " (" + ov.source.lag_state.replace("_", " ") + ")" : "");
    lag.className = "pill " + (ov.source.lag_state === "stale" ? "bad" : "");
    renderHA(ov.ha);

    $("checkpoint-position").textContent = ov.checkpoint.position || "(none)";
    $("checkpoint-position").dataset.value = ov.checkpoint.position || "";
    $("checkpoint-age").textContent = ov.checkpoint.stored_at ? fmtDuration((ov.checkpoint.age_seconds || 0) * 1000) + " ago" : "never";
    $("checkpoint-age").dataset.value = String(ov.checkpoint.age_seconds || 0);

    const tbody = $("feeds-body");
    const rows = [];
    for (const f of ov.feeds) {
      const tr = el("tr", { "data-feed": f.name });
      tr.appendChild(el("td", { "data-field": "name" }, f.name));
      tr.appendChild(el("td", { "data-field": "mode", "data-value": f.mode, class: "mode-" + f.mode }, f.mode));
      for (const k of ["source_records", "sent", "failed", "rejected", "pending"]) {
        const cls = "num" + ((k === "failed" || k === "rejected") && f[k] > 0 ? " warn" : "");
        tr.appendChild(el("td", { "data-field": k, "data-value": f[k] || 0, class: cls }, fmtInt(f[k])));
      }
      tr.appendChild(el("td", { "data-field": "last_sync", "data-value": f.last_sync || "" }, fmtTime(f.last_sync)));
      tr.appendChild(el("td", { "data-field": "lag_ms", "data-value": f.lag_ms || 0, class: "num" }, fmtDuration(f.lag_ms || 0)));
      const rs = f.resync || {};
      const td = el("td", {
        "data-field": "resync", "data-running": String(!!rs.running),
        "data-done": rs.done || 0, "data-total": rs.total || 0,
      });
      if (rs.total > 0 || rs.running) {
        const p = el("progress", { max: Math.max(rs.total || 0, 1), value: Math.min(rs.done || 0, Math.max(rs.total || 0, 1)) });
        td.appendChild(p);
        const pct = rs.total > 0 ? Math.floor(100 * rs.done / rs.total) : 0;
        td.appendChild(el("span", { class: "muted" }, " " + fmtInt(rs.done) + " / " + fmtInt(rs.total) + " (" + pct + "%)" + (rs.running ? " running" : " done")));
      } else {
        td.appendChild(el("span", { class: "muted" }, "—"));
      }
      tr.appendChild(td);
      tr.appendChild(lastVerifyCell(f.last_verify));
      rows.push(tr);
    }
    if (rows.length === 0) {
      rows.push(emptyRow("feeds", 11, "No feeds are enabled: enable one under feeds: in the configuration (feeds.<name>.enabled: true) and restart feedcdc."));
    }
    tbody.replaceChildren(...rows);

    // keep the feed selectors in sync with the feeds
    const names = ov.feeds.map((f) => f.name);
    if (names.join("\0") !== state.feeds.join("\0")) {
      state.feeds = names;
      const af = $("action-feed");
      const keep = af.value;
      af.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (names.includes(keep)) af.value = keep;
      const itf = $("items-feed");
      const keep2 = itf.value;
      itf.replaceChildren(el("option", { value: "" }, "all feeds"), ...names.map((n) => el("option", { value: n }, n)));
      itf.value = names.includes(keep2) ? keep2 : "";
    }
  }

  // ---------- items ----------
  function identText(ids) {
    return Object.keys(ids || {}).sort().map((k) => k + "=" + ids[k]).join(", ");
  }

  async function loadItems() {
    const q = new URLSearchParams();
    const feed = $("items-feed").value;
    if (feed) q.set("feed", feed);
    q.set("status", $("items-status").value);
    const sku = $("items-search").value.trim();
    if (sku) q.set("sku", sku);
    q.set("offset", String(state.itemsOffset));
    q.set("limit", String(state.itemsLimit));
    const seq = ++state.itemsSeq;
    let page;
    try {
      page = await api("api/items?" + q.toString());
    } catch (e) {
      if (seq !== state.itemsSeq) return;
      if (e.status !== 401 && e.status !== 403) throw e;
      // Not an outage: this listener needs the token for item payloads.
      renderItems({ items: [], total: 0, offset: 0 }, (e.status === 401 ? "Feed items need the dashboard token on this address: type it in the Token box above. " : "") + e.message);
      page = null;
    }
    if (seq !== state.itemsSeq) return; // a newer query was sent meanwhile; its answer wins
    if (page === null) {
      $("items-body").dataset.locked = "true";
    } else {
      delete $("items-body").dataset.locked;
      if (page.total > 0 && page.offset >= page.total) {
        state.itemsOffset = Math.max(0, Math.floor((page.total - 1) / state.itemsLimit) * state.itemsLimit);
        return loadItems();
      }
      renderItems(page, emptyItemsText(feed, $("items-status").value, sku));
    }
    // What the table shows now, for readers (and browser tests).
    const tb = $("items-body");
    tb.dataset.feed = feed;
    tb.dataset.status = $("items-status").value;
    tb.dataset.sku = sku;
    tb.dataset.offset = String(page ? page.offset : 0);
  }

  const STATUS_WORDS = {
    failed: "failed items", retryable: "items that failed and will retry", rejected: "items that require attention",
    pending: "items awaiting submission", sent: "submitted items", all: "items",
  };

  function emptyItemsText(feed, status, sku) {
    let t = "No " + (STATUS_WORDS[status] || "items");
    if (feed) t += " in " + feed;
    if (sku) t += " matching SKU “" + sku + "”";
    t += ".";
    if (status === "failed" && !sku) t += " Nothing needs attention.";
    if (sku) t += " The search matches part of a SKU or other identifier, in any case.";
    return t;
  }

  function renderItems(page, emptyText) {
    state.itemsTotal = page.total;
    $("items-total").textContent = fmtInt(page.total);
    $("items-total").dataset.value = String(page.total);
    const from = page.total === 0 ? 0 : page.offset + 1;
    const to = page.offset + page.items.length;
    $("items-range").textContent = from + "–" + to;
    $("items-prev").disabled = page.offset === 0;
    $("items-next").disabled = to >= page.total;
    const rows = page.items.map((it) => {
      const tr = el("tr", {
        "data-item-id": it.feed_id, "data-feed": it.feed, "data-status": it.status,
        "data-sku": (it.identifiers && (it.identifiers.sku || it.identifiers.productSku || it.identifiers.attributeCode)) || "",
        class: "clickable", tabindex: "0", title: "show the item's JSON",
      });
      tr.appendChild(el("td", null, it.feed));
      tr.appendChild(el("td", { class: "mono", title: it.feed_id }, (it.feed_id || "").slice(0, 12)));
      tr.appendChild(el("td", null, it.entity_id));
      tr.appendChild(el("td", { "data-field": "identifiers" }, identText(it.identifiers) + (it.deleted ? " (deleted)" : "")));
      tr.appendChild(el("td", { class: "status-" + it.status }, it.status_text + " (" + it.status + ")"));
      tr.appendChild(el("td", { class: "num" }, it.attempts));
      tr.appendChild(el("td", null, fmtTime(it.last_sync)));
      tr.appendChild(wrapAtSeparators(el("td", { class: "error-text", "data-field": "error" }), it.error || ""));
      tr.appendChild(el("td", { class: "mono" }, it.request_id || ""));
      if (state.detail && state.detail.id === it.feed_id && state.detail.feed === it.feed) tr.classList.add("selected");
      const open = () => openItem(it, tr);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      return tr;
    });
    if (rows.length === 0) rows.push(emptyRow("items", 9, emptyText || "No items."));
    $("items-body").replaceChildren(...rows);
  }

  // placePanel starts the side panel below the (sticky) header, so the
  // token box stays reachable while it is open.
  function placePanel() {
    const h = document.querySelector("header").getBoundingClientRect().height;
    document.documentElement.style.setProperty("--header-h", Math.ceil(h) + "px");
  }

  function closeItem() {
    $("item-detail").hidden = true;
    state.detail = null;
    for (const r of document.querySelectorAll("#items-body tr.selected")) r.classList.remove("selected");
    if (state.detailOpener && document.body.contains(state.detailOpener)) state.detailOpener.focus();
    state.detailOpener = null;
  }

  function renderItemMeta(it) {
    const dl = $("item-detail-meta");
    const rows = [
      ["Status", it.status_text + " (" + it.status + ")"],
      ["Identifiers", identText(it.identifiers) + (it.deleted ? " (deleted)" : "")],
      ["Entity ID", it.entity_id],
      ["Attempts", String(it.attempts)],
      ["Last sync", fmtTime(it.last_sync)],
    ];
    if (it.error) rows.push(["Error", it.error]);
    if (it.request_id) rows.push(["Request ID", it.request_id]);
    const nodes = [];
    for (const [k, v] of rows) {
      nodes.push(el("dt", null, k));
      const dd = el("dd", { "data-field": k.toLowerCase().replace(/ /g, "_") });
      wrapAtSeparators(dd, v || "");
      if (k === "Error") dd.className = "error-text";
      nodes.push(dd);
    }
    dl.replaceChildren(...nodes);
  }

  async function openItem(it, row) {
    const sku = (it.identifiers && (it.identifiers.sku || it.identifiers.productSku)) || "";
    state.detail = { feed: it.feed, id: it.feed_id, sku: sku };
    state.detailOpener = row || null;
    for (const r of document.querySelectorAll("#items-body tr.selected")) r.classList.remove("selected");
    if (row) row.classList.add("selected");
    renderItemMeta(it);
    $("item-detail-id").textContent = it.feed_id;
    $("item-detail-feed").textContent = it.feed;
    $("item-resync").disabled = !sku || !actionsEnabled;
    const pre = $("item-json");
    pre.textContent = "loading…";
    pre.dataset.itemId = it.feed_id;
    pre.dataset.loaded = "false";
    placePanel();
    $("item-detail").hidden = false;
    $("item-close").focus({ preventScroll: true });
    try {
      const data = await api("api/feeds/" + encodeURIComponent(it.feed) + "/items/" + encodeURIComponent(it.feed_id));
      pre.textContent = JSON.stringify(data, null, 2);
      pre.dataset.loaded = "true";
    } catch (e) {
      pre.textContent = "could not load the item: " + e.message;
      pre.dataset.loaded = "error";
    }
  }

  // ---------- health ----------
  function renderHealth(h) {
    const hs = $("health-source");
    hs.dataset.connected = String(!!h.source.connected);
    hs.className = "pill " + (h.source.connected ? "ok" : "bad");
    hs.textContent = (h.source.connected ? "source connected" : "source disconnected") +
      (h.source.flavor ? " · " + h.source.flavor + (h.source.version ? " " + h.source.version : "") : "") +
      (h.source.error ? " · " + h.source.error : "");
    const hr = $("health-retention");
    hr.dataset.status = h.retention_status || "";
    hr.className = "pill " + ({ PASS: "ok", WARN: "warn", FAIL: "bad" }[h.retention_status] || "");
    hr.textContent = "checkpoint age " + fmtDuration((h.checkpoint_age_seconds || 0) * 1000) +
      (h.binlog_retention_seconds > 0 ? " of " + fmtDuration(h.binlog_retention_seconds * 1000) + " binlog retention" : " (binlog retention unknown)");
    const sinks = (h.sinks || []).map((s) => el("span", {
      class: "pill " + (s.connected ? "ok" : "bad"), "data-sink": s.name, "data-kind": s.kind, "data-connected": String(!!s.connected),
      title: "sink " + s.name + " (type " + s.kind + ")" + (s.target ? " → " + s.target : ""),
    }, sinkLabel(s)));
    if (sinks.length === 0) sinks.push(el("span", { class: "muted", "data-empty": "sinks" }, "no sinks configured"));
    $("health-sinks").replaceChildren(...sinks);
    const rows = (h.checks || []).map((c) => {
      const tr = el("tr", { "data-check": c.name, "data-status": c.status });
      tr.appendChild(el("td", null, c.name));
      tr.appendChild(el("td", { class: "check-" + c.status }, c.status));
      tr.appendChild(el("td", null, c.message));
      tr.appendChild(el("td", { class: "mono" }, c.fix || ""));
      return tr;
    });
    if (rows.length === 0) {
      rows.push(emptyRow("checks", 4, "No check results yet: the source preflight checks run at start and then every minute."));
    }
    $("checks-body").replaceChildren(...rows);
  }

  // sinkLabel names a sink once: its type, its name when that differs from
  // the type, and where it sends to ("kafka → 127.0.0.1:9092 · connected",
  // "http audit → the service URL · down: …").
  function sinkLabel(s) {
    let t = s.kind || "sink";
    if (s.name && s.name !== s.kind) t += " " + s.name;
    if (s.target) t += " → " + s.target;
    return t + (s.connected ? " · connected" : " · down" + (s.error ? ": " + s.error : ""));
  }

  // ---------- refresh loop ----------
  async function refresh() {
    if (state.refreshing) return;
    state.refreshing = true;
    const errors = [];
    try {
      const [ov, h] = await Promise.allSettled([api("api/overview"), api("api/health")]);
      if (ov.status === "fulfilled") renderOverview(ov.value); else errors.push("overview: " + ov.reason.message);
      if (h.status === "fulfilled") renderHealth(h.value); else errors.push("health: " + h.reason.message);
      try { await loadItems(); } catch (e) { errors.push("items: " + e.message); }
      try { await loadSnapshots(); } catch (e) { errors.push("raw snapshots: " + e.message); }
    } finally {
      state.refreshing = false;
    }
    showError(errors.join(" · "));
    state.refreshCount++;
    body.dataset.refreshCount = String(state.refreshCount);
    if (errors.length === 0) body.dataset.loaded = "true";
    $("last-refresh").textContent = "updated " + new Date().toLocaleTimeString();
  }

  // ---------- actions ----------
  function parseIDs(s) {
    return s.split(/[\s,;]+/).map((x) => x.trim()).filter((x) => x !== "");
  }

  async function scheduleResync(feed, ids, whole) {
    if (!feed) { setResult("error", "choose a feed first"); return; }
    if (ids.length === 0 && !whole) {
      setResult("error", "enter the SKUs to resync, or tick “whole feed”");
      return;
    }
    setResult("busy", "scheduling…");
    try {
      const r = await api("api/feeds/" + encodeURIComponent(feed) + "/resync", {
        method: "POST", auth: true, body: whole ? { whole_feed: true } : { ids: ids },
      });
      if (r.job) {
        await followJob(r.job);
      } else {
        setResult("ok", r.message);
      }
      refresh();
    } catch (e) {
      setResult("error", (e.status === 401 ? "token needed or wrong: " : "") + e.message);
    }
  }

  // followJob shows a job's (resync or retry) progress (entities
  // done/total) in the action result until it ends, then its summary or
  // its error.
  async function followJob(job) {
    const r = $("action-result");
    r.dataset.job = job.id;
    for (;;) {
      r.dataset.done = String(job.done);
      r.dataset.total = String(job.total);
      r.dataset.jobState = job.state;
      const of = (job.kind || "resync") + " job " + job.id + " of " + job.feed;
      if (job.state === "failed") {
        setResult("error", of + " failed: " + (job.error || "unknown error"));
        return;
      }
      if (job.state === "done" && job.kind === "retry") {
        const res = job.result || {};
        const st = res.stats || {};
        setResult("ok", of + " done: " + (st.keys || 0) + " entities rebuilt, sent " + (st.sent || 0) + ", still failing " +
          (st.failed || 0) + ", rejected " + (st.rejected || 0) + ", requiring attention " + (st.attention || 0) +
          "; the feed has " + fmtInt(res.failed_now) + " failed items now");
        return;
      }
      if (job.state === "done") {
        const st = (job.result && job.result.stats) || {};
        setResult("ok", of + " done: " + job.done + "/" + job.total + " entities, sent " + (st.sent || 0) +
          ", unchanged " + (st.skipped || 0) + ", failed " + (st.failed || 0) + ", rejected " + (st.rejected || 0));
        return;
      }
      setResult("busy", of + ": " + job.done + "/" + (job.total > 0 ? job.total : "…") + " entities");
      await new Promise((ok) => setTimeout(ok, 500));
      job = await api("api/jobs/" + encodeURIComponent(job.id), { auth: true });
    }
  }

  async function retryFailed(feed) {
    if (!feed) { setResult("error", "choose a feed first"); return; }
    setResult("busy", "starting…");
    try {
      const r = await api("api/feeds/" + encodeURIComponent(feed) + "/retry", { method: "POST", auth: true });
      if (r.job) {
        await followJob(r.job);
      } else {
        setResult("ok", r.message);
      }
      refresh();
    } catch (e) {
      setResult("error", (e.status === 401 ? "token needed or wrong: " : "") + e.message);
    }
  }

  // ---------- raw snapshots ----------
  async function startSnapshot(table, where) {
    if (!table) { setResult("error", "enter the table to snapshot as db.table"); return; }
    setResult("busy", "starting…");
    try {
      const body = { table: table };
      if (where) body.where = where;
      await api("api/raw-snapshots", { method: "POST", auth: true, body: body });
      setResult("ok", "raw snapshot of " + table + " started");
      loadSnapshots().catch(() => {});
    } catch (e) {
      setResult("error", (e.status === 401 ? "token needed or wrong: " : "") + e.message);
    }
  }

  async function controlSnapshot(table, action) {
    setResult("busy", action + "…");
    try {
      await api("api/raw-snapshots/" + encodeURIComponent(table) + "/" + action, { method: "POST", auth: true });
      setResult("ok", "raw snapshot of " + table + ": " + action);
      loadSnapshots().catch(() => {});
    } catch (e) {
      setResult("error", (e.status === 401 ? "token needed or wrong: " : "") + e.message);
    }
  }

  // loadSnapshots lists the raw snapshots with their progress and the
  // actions that apply; a connector without raw snapshots (501) hides
  // the form.
  async function loadSnapshots() {
    let r;
    try {
      r = await api("api/raw-snapshots");
    } catch (e) {
      if (e.status === 501) { $("snapshot-row").hidden = true; return; }
      throw e;
    }
    const list = $("raw-snapshots");
    list.replaceChildren();
    for (const s of r.snapshots || []) {
      let text = s.table + ": " + s.state + " (" + s.mode + "), read " + s.read;
      if (s.total > 0) text += " of about " + s.total;
      text += ", sent " + s.sent + ", left out for newer changes " + s.dropped;
      if (s.error) text += ": " + s.error;
      const li = el("li", { "data-table": s.table, "data-state": s.state }, text);
      const acts = s.state === "running" ? ["pause", "stop"] : s.state === "paused" ? ["resume", "stop"] : [];
      for (const a of acts) {
        const b = el("button", { type: "button", "data-action": a }, a);
        b.disabled = !actionsEnabled;
        b.addEventListener("click", () => controlSnapshot(s.table, a));
        li.append(" ", b);
      }
      list.append(li);
    }
  }

  async function checkToken() {
    const ts = $("token-state");
    if (!token()) { ts.dataset.state = "none"; ts.textContent = "no token"; return; }
    ts.dataset.state = "checking";
    ts.textContent = "checking…";
    try {
      await api("api/auth/check", { method: "POST", auth: true });
      ts.dataset.state = "ok";
      ts.textContent = "token accepted";
      if (itemsNeedToken) loadItems().catch((e) => showError("items: " + e.message));
    } catch (e) {
      ts.dataset.state = "rejected";
      ts.textContent = e.message;
    }
  }

  function wire() {
    if (!actionsEnabled) {
      $("actions-disabled").hidden = false;
      for (const id of ["resync-button", "retry-button", "item-resync", "token-save", "snapshot-button"]) $(id).disabled = true;
    }
    $("token").value = token();
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      try { sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()); } catch (err) { /* storage disabled */ }
      checkToken();
    });
    $("resync-button").addEventListener("click", () =>
      scheduleResync($("action-feed").value, parseIDs($("resync-ids").value), $("resync-whole").checked));
    $("retry-button").addEventListener("click", () => retryFailed($("action-feed").value));
    $("snapshot-button").addEventListener("click", () =>
      startSnapshot($("snapshot-table").value.trim(), $("snapshot-where").value.trim()));
    $("item-resync").addEventListener("click", () => {
      if (state.detail && state.detail.sku) scheduleResync(state.detail.feed, [state.detail.sku], false);
    });
    $("item-close").addEventListener("click", closeItem);
    window.addEventListener("resize", placePanel);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("item-detail").hidden) closeItem();
    });
    let searchTimer = null;
    const reloadItems = () => {
      state.itemsOffset = 0;
      loadItems().then(() => showError(""), (e) => showError("items: " + e.message));
    };
    $("items-search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(reloadItems, 250);
    });
    $("items-feed").addEventListener("change", reloadItems);
    $("items-status").addEventListener("change", reloadItems);
    $("items-prev").addEventListener("click", () => {
      state.itemsOffset = Math.max(0, state.itemsOffset - state.itemsLimit);
      loadItems().catch((e) => showError("items: " + e.message));
    });
    $("items-next").addEventListener("click", () => {
      if (state.itemsOffset + state.itemsLimit < state.itemsTotal) state.itemsOffset += state.itemsLimit;
      loadItems().catch((e) => showError("items: " + e.message));
    });
  }

  wire();
  checkToken();
  refresh();
  setInterval(refresh, refreshMs);
})();
