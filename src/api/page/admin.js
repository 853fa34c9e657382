// coupon-ledger admin page. Plain script, no build step, nothing loaded from
// elsewhere. Every data call goes to the admin API with the token the
// operator typed, kept in this tab's sessionStorage only.
"use strict";

(function () {
  const TOKEN_KEY = "coupon-ledger.admin-token";
  const SVG = "http://www.w3.org/2000/svg";
  const STOCK_STATUS = { 1: "inactive", 2: "in review", 3: "running", 4: "stopped", 5: "paused" };
  // The moves the ledger allows: 1→2, 1→3, 2→1, 2→3, 3→5, 5→3, any non-4 → 4.
  const STOCK_MOVES = { 1: [2, 3, 4], 2: [1, 3, 4], 3: [5, 4], 5: [3, 4], 4: [] };
  const MOVE_LABEL = { 1: "Deactivate", 2: "Send to review", 3: "Run", 4: "Stop", 5: "Pause" };
  const COUPON_STATUS = { 1: "available", 2: "used", 3: "expired", 4: "deactivated" };
  const EVENT_LABEL = {
    issue: "Claimed",
    redeem: "Redeemed",
    unredeem: "Redemption undone",
    expire: "Expired",
    deactivate: "Deactivated",
  };
  const SERIES = [
    ["issue", "claims"],
    ["redeem", "redemptions"],
    ["expire", "expiries"],
  ];

  let serverOffset = "+08:00";

  // ------------------------------------------------------------ helpers

  const $ = (sel) => document.querySelector(sel);

  /** An element with attributes (`class`, `text`, `on*`, others as attributes) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }

  function say(sel, text, kind) {
    const el = $(sel);
    el.textContent = text || "";
    el.className = "msg" + (text ? " " + (kind || "info") : "");
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  /** Shows a time the server rendered (yyyy-MM-ddTHH:mm:ss.SSS±hh:mm) as "yyyy-MM-dd HH:mm:ss". */
  function shortTime(t) {
    return typeof t === "string" ? t.slice(0, 19).replace("T", " ") : "–";
  }

  function fen(n) {
    if (typeof n !== "number") return "–";
    const sign = n < 0 ? "-" : "";
    const a = Math.abs(n);
    return sign + "¥" + Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0");
  }

  class SignedOut extends Error {}

  /**
   * Calls the admin API with the token. Resolves to
   * {http, code, message, data, raw} for any answer; rejects only when the
   * server cannot be reached, or with SignedOut on 401/429 (after showing why).
   */
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + token() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new Error("cannot reach the server (" + e.message + ")");
    }
    let json = null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        json = await res.json();
      } catch (e) {
        json = null;
      }
    }
    const out = {
      http: res.status,
      code: json && typeof json.code === "number" ? json.code : res.ok ? 0 : res.status,
      message: (json && json.message) || res.statusText || "HTTP " + res.status,
      data: json ? json.data : undefined,
      raw: res,
    };
    if (res.status === 401) {
      signOut("The server refused this token (401: " + out.message + "). Check admin_token in the server's config and sign in again.");
      throw new SignedOut(out.message);
    }
    if (res.status === 429) {
      const wait = res.headers.get("Retry-After");
      signOut("Too many wrong tokens from this address: the admin API is locked for " + (wait || "some") + " s. " + out.message);
      throw new SignedOut(out.message);
    }
    return out;
  }

  /** Runs a section loader, turning failures into a message in that section. */
  async function guarded(msgSel, f) {
    try {
      await f();
    } catch (e) {
      if (e instanceof SignedOut) return;
      say(msgSel, e.message, "error");
    }
  }

  // ------------------------------------------------------------ sign in / out

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#app").hidden = true;
    $("#nav").hidden = true;
    $("#sign-out").hidden = true;
    $("#refresh").hidden = true;
    $("#signin").hidden = false;
    say("#signin-msg", why || "", why ? "error" : "info");
    $("#token").value = "";
    $("#token").focus();
  }

  async function signIn(t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    say("#signin-msg", "Checking the token…", "info");
    let r;
    try {
      r = await api("GET", "/admin/stocks");
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#signin-msg", e.message, "error");
      return;
    }
    if (r.code !== 0) {
      sessionStorage.removeItem(TOKEN_KEY);
      say("#signin-msg", r.code + " " + r.message, "error");
      return;
    }
    say("#signin-msg", "");
    $("#signin").hidden = true;
    $("#app").hidden = false;
    $("#nav").hidden = false;
    $("#sign-out").hidden = false;
    $("#refresh").hidden = false;
    renderStocks(r.data.stocks || []);
    await loadAll();
  }

  async function loadAll() {
    await Promise.all([
      guarded("#stocks-msg", loadStocks),
      guarded("#outbox-msg", loadHealth),
      guarded("#outbox-msg", loadOutbox),
      guarded("#activity-msg", loadActivity),
      guarded("#voucher-list-msg", loadVoucherList),
    ]);
    document.body.dataset.loaded = String(Date.now());
  }

  // ------------------------------------------------------------ health and outbox

  async function loadHealth() {
    const res = await fetch("/healthz", { cache: "no-store" });
    const j = await res.json();
    const d = j.data || {};
    const o = d.outbox || {};
    const badge = $("#health-status");
    badge.textContent = d.status || "unknown";
    badge.className = "badge " + (d.status === "ok" ? "ok" : "bad");
    const stat = (label, n, alert) =>
      h("div", { class: "stat" + (alert ? " alert" : ""), "data-stat": label }, h("b", { text: n === null || n === undefined ? "–" : n }), h("span", { text: label }));
    $("#health-cards").replaceChildren(
      stat("pending", o.pending),
      stat("dead", o.dead, o.dead > 0),
      stat("blocked", o.blocked_by_dead, o.blocked_by_dead > 0),
      stat("delivered", o.delivered),
      stat("abandoned", o.abandoned),
      stat("oldest pending (s)", o.oldest_pending_age_s),
      stat("sync", d.sync),
      stat("uptime (s)", d.uptime_s)
    );
    $("#health-problems").replaceChildren(...(d.problems || []).map((p) => h("li", { text: p })));
  }

  async function loadOutbox() {
    const r = await api("GET", "/admin/outbox?state=dead&limit=1000");
    if (r.code !== 0) return say("#outbox-msg", r.code + " " + r.message, "error");
    const calls = r.data.calls || [];
    const rows = calls.map((c) => {
      const reason = h("input", { placeholder: "reason to abandon", "aria-label": "reason to abandon call " + c.id, maxlength: 256, class: "abandon-reason" });
      const retry = h("button", { type: "button", class: "retry", "data-id": c.id, text: "Retry", onclick: () => outboxAction(c.id, "retry") });
      const abandon = h("button", {
        type: "button",
        class: "danger abandon",
        "data-id": c.id,
        text: "Abandon",
        onclick: () => outboxAction(c.id, "abandon", reason.value.trim()),
      });
      return h(
        "tr",
        { "data-id": c.id },
        h("td", { class: "num", "data-label": "Id", text: c.id }),
        h("td", { "data-label": "Path", class: "mono", text: c.path }),
        h("td", { "data-label": "Stock / coupon" }, c.stock_id || "–", c.coupon_id ? h("span", { class: "sub mono", text: c.coupon_id }) : null),
        h("td", { class: "num", "data-label": "Attempts", text: c.attempts }),
        h("td", { "data-label": "Last error", class: "err", text: c.last_error || "–" }),
        h("td", { "data-label": "Created", text: shortTime(c.created_time) }),
        h("td", { "data-label": "Action", class: "actions-cell" }, h("div", { class: "actions" }, retry, reason, abandon))
      );
    });
    $("#outbox-table tbody").replaceChildren(...rows);
    $("#outbox-table").hidden = rows.length === 0;
    if (rows.length === 0) say("#outbox-msg", "No dead calls: the platform is taking every call.", "ok");
    else say("#outbox-msg", rows.length + " dead call(s): retry once the platform is fixed, or abandon a call it will never accept.", "error");
  }

  async function outboxAction(id, action, reason) {
    try {
      const r =
        action === "retry"
          ? await api("POST", "/admin/outbox/" + encodeURIComponent(id) + "/retry", {})
          : await api("POST", "/admin/outbox/" + encodeURIComponent(id) + "/abandon", { reason: reason || "" });
      if (r.code !== 0) {
        say("#outbox-msg", "Call " + id + ": " + r.code + " " + r.message, "error");
        return;
      }
      await Promise.all([loadOutbox(), loadHealth()]);
      say("#outbox-msg", "Call " + id + (action === "retry" ? " is pending again (state " + r.data.state + ")." : " is abandoned."), "ok");
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#outbox-msg", e.message, "error");
    }
  }

  // ------------------------------------------------------------ stocks

  async function loadStocks() {
    const r = await api("GET", "/admin/stocks");
    if (r.code !== 0) return say("#stocks-msg", r.code + " " + r.message, "error");
    renderStocks(r.data.stocks || []);
  }

  function learnOffset(t) {
    if (typeof t === "string" && /[+-]\d\d:\d\d$/.test(t)) serverOffset = t.slice(-6);
    showServerToday();
  }

  /** Today's date where the server keeps its books (its utc_offset), yyyy-MM-dd. */
  function serverToday() {
    const m = /^([+-])(\d\d):(\d\d)$/.exec(serverOffset);
    const minutes = m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
    return new Date(Date.now() + minutes * 60000).toISOString().slice(0, 10);
  }

  /** The report's day defaults to the server's today (statements are cut at its midnight), until the operator picks one. */
  function showServerToday() {
    const input = $("#report-date");
    if (!input.dataset.picked) input.value = serverToday();
  }

  function renderStocks(stocks) {
    if (stocks.length) learnOffset(stocks[0].create_time);
    const rows = stocks.map((s) => {
      const c = s.counts || {};
      const moves = (STOCK_MOVES[s.stock_status] || []).map((to) => {
        const b = h("button", {
          type: "button",
          class: to === 4 ? "danger move" : "secondary move",
          "data-to": to,
          text: MOVE_LABEL[to] + " → " + to,
          title: "stock_status " + s.stock_status + " → " + to,
        });
        b.addEventListener("click", () => {
          if (to === 4 && !b.classList.contains("armed")) {
            // Stopping is final: a second click confirms.
            b.classList.add("armed");
            b.textContent = "Confirm stop (final)";
            setTimeout(() => {
              b.classList.remove("armed");
              b.textContent = MOVE_LABEL[4] + " → 4";
            }, 5000);
            return;
          }
          setStatus(s.stock_id, to);
        });
        return b;
      });
      return h(
        "tr",
        { "data-stock": s.stock_id },
        h("td", { "data-label": "Stock" }, h("span", { class: "mono", text: s.stock_id }), h("span", { class: "sub", text: s.stock_name })),
        h("td", { "data-label": "Status" }, h("span", { class: "badge status s" + s.stock_status, text: s.stock_status + " " + (STOCK_STATUS[s.stock_status] || "?") })),
        h("td", { class: "num", "data-label": "Issued", text: c.issued }),
        h("td", { class: "num", "data-label": "Available", text: c.available }),
        h("td", { class: "num", "data-label": "Used", text: c.used }),
        h("td", { class: "num", "data-label": "Expired", text: c.expired }),
        h("td", { class: "num", "data-label": "Deactivated", text: c.deactivated }),
        h("td", { class: "num", "data-label": "Max", text: s.max_coupons }),
        h("td", { "data-label": "Change status", class: "actions-cell" }, h("div", { class: "actions" }, moves.length ? moves : h("span", { class: "sub", text: "final" })))
      );
    });
    $("#stocks-table tbody").replaceChildren(...rows);
    if (!rows.length) say("#stocks-msg", "No stocks yet: create one below.", "info");
  }

  async function setStatus(id, to) {
    try {
      const r = await api("POST", "/admin/stocks/" + encodeURIComponent(id) + "/status", { stock_status: to });
      if (r.code !== 0) return say("#stocks-msg", id + ": " + r.code + " " + r.message, "error");
      await loadStocks();
      say("#stocks-msg", id + " is now " + to + " (" + STOCK_STATUS[to] + ").", "ok");
      await guarded("#outbox-msg", loadHealth);
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#stocks-msg", e.message, "error");
    }
  }

  /** The form's checks are the API's own rules, in its words; the API checks again. */
  function stockBody(form) {
    const v = (n) => form.elements[n].value.trim();
    const str = (n, max) => {
      const s = v(n);
      if (!s) throw new Error(n + ": required");
      if ([...s].length > max) throw new Error(n + ": longer than " + max + " characters");
      return s;
    };
    const int = (n, min, max) => {
      const s = v(n);
      if (!s) throw new Error(n + ": required");
      if (!/^-?\d+$/.test(s)) throw new Error(n + ": must be an integer");
      const x = Number(s);
      if (x < min || x > max) throw new Error(n + ": must be between " + min + " and " + max);
      return x;
    };
    const offset = v("offset");
    if (!/^[+-]\d\d:\d\d$/.test(offset)) throw new Error("offset: must look like +08:00");
    const time = (n) => {
      let s = v(n);
      if (!s) throw new Error(n + ": required");
      if (s.length === 16) s += ":00";
      return s + ".000" + offset;
    };
    const type = int("coupon_type", 1, 3);
    const body = {
      stock_id: str("stock_id", 30),
      stock_name: str("stock_name", 20),
      app_channel_id: int("app_channel_id", 0, 2147483647),
      app_id: str("app_id", 32),
      instructions: str("instructions", 1024),
      coupon_name: str("coupon_name", 20),
      coupon_desc: str("coupon_desc", 50),
      coupon_type: type,
    };
    const MAX_FEN = 100000000000;
    if (type === 3) {
      body.discount_coupon = {
        discount_percent: int("discount_percent", 0, 99999999999),
        discount_amount_max: int("discount_amount_max", 0, MAX_FEN),
        transaction_minimum: int("transaction_minimum", 0, MAX_FEN),
      };
    } else {
      body.fixed_normal_coupon = {
        coupon_amount: int("coupon_amount", 0, MAX_FEN),
        transaction_minimum: int("transaction_minimum", 0, MAX_FEN),
      };
    }
    body.max_coupons = int("max_coupons", 1, 99999999999);
    body.max_coupons_per_user = int("max_coupons_per_user", 1, 99999999999);
    body.available_begin_time = time("available_begin_time");
    body.available_end_time = time("available_end_time");
    body.stock_status = int("stock_status", 1, 5);
    return body;
  }

  async function createStock(ev) {
    ev.preventDefault();
    const form = $("#stock-form");
    let body;
    try {
      body = stockBody(form);
    } catch (e) {
      return say("#stock-form-msg", e.message, "error");
    }
    try {
      const r = await api("POST", "/admin/stocks", body);
      if (r.code !== 0) return say("#stock-form-msg", r.code + " " + r.message, "error");
      say("#stock-form-msg", "Created " + r.data.stock_id + ".", "ok");
      await loadStocks();
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#stock-form-msg", e.message, "error");
    }
  }

  function localInput(d) {
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function prepareStockForm() {
    const form = $("#stock-form");
    const now = new Date();
    now.setMilliseconds(0);
    form.elements.available_begin_time.value = localInput(now);
    const end = new Date(now.getTime() + 365 * 86400000);
    form.elements.available_end_time.value = localInput(end);
    const showBlocks = () => {
      const discount = form.elements.coupon_type.value === "3";
      form.querySelectorAll(".discount").forEach((el) => (el.hidden = !discount));
      form.querySelectorAll(".fixed").forEach((el) => (el.hidden = discount));
    };
    form.elements.coupon_type.addEventListener("change", showBlocks);
    showBlocks();
    $("#new-stock").addEventListener("toggle", () => {
      form.elements.offset.value = serverOffset;
    });
  }

  // ------------------------------------------------------------ activity chart

  async function loadActivity() {
    const days = $("#activity-days").value;
    const r = await api("GET", "/admin/activity?days=" + encodeURIComponent(days));
    if (r.code !== 0) return say("#activity-msg", r.code + " " + r.message, "error");
    learnOffset(r.data.to_time);
    const unit = $("#activity-unit").value;
    const buckets = unit === "day" ? r.data.daily : r.data.hourly;
    drawChart(buckets || [], unit);
    const total = (k) => (r.data.daily || []).reduce((a, b) => a + (b[k] || 0), 0);
    say(
      "#activity-msg",
      "Since " + shortTime(r.data.from_time) + ": " + SERIES.map(([k, label]) => total(k) + " " + label).join(", ") + ".",
      "info"
    );
  }

  /** The axis top: 4 × a round step (1, 2 or 5 × 10^k), so every tick is a whole number. */
  function niceMax(n) {
    const raw = Math.max(1, n / 4);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
    return 4 * Math.max(1, Math.ceil(step));
  }

  function drawChart(buckets, unit) {
    $("#activity-legend").replaceChildren(...SERIES.map(([k, label]) => h("span", {}, h("i", { class: k }), label)));
    const W = 720, H = 220, L = 40, R = 10, T = 10, B = 28;
    const n = buckets.length;
    const height = (b) => (unit === "day" ? Math.max(...SERIES.map(([k]) => b[k] || 0)) : SERIES.reduce((a, [k]) => a + (b[k] || 0), 0));
    const max = niceMax(Math.max(0, ...buckets.map(height)));
    const x0 = L, x1 = W - R, y0 = H - B, y1 = T;
    const y = (v) => y0 - (v / max) * (y0 - y1);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", id: "activity-svg", "data-buckets": n, "data-unit": unit });
    root.append(svg("title", {}, "Claims, redemptions and expiries per " + unit));
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      root.append(svg("line", { class: "axis", x1: x0, x2: x1, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "tick", x: x0 - 6, y: y(v) + 4, "text-anchor": "end" }, Number.isInteger(v) ? v : v.toFixed(1)));
    }
    if (n === 0) {
      $("#activity-chart").replaceChildren(root);
      return;
    }
    const slot = (x1 - x0) / n;
    const labelEvery = Math.max(1, Math.ceil(n / 8));
    buckets.forEach((b, i) => {
      if (i % labelEvery !== 0) return;
      const label = unit === "day" ? (b.date || "").slice(5) : shortTime(b.time).slice(5, 13) + "h";
      root.append(svg("text", { class: "tick", x: x0 + slot * i + slot / 2, y: H - 8, "text-anchor": "middle" }, label));
    });
    if (unit === "day") {
      const bw = Math.max(1, (slot * 0.8) / SERIES.length);
      buckets.forEach((b, i) => {
        SERIES.forEach(([k, label], j) => {
          const v = b[k] || 0;
          const rect = svg("rect", { class: k, x: x0 + slot * i + slot * 0.1 + bw * j, y: y(v), width: bw, height: y0 - y(v) });
          rect.append(svg("title", {}, (b.date || "") + ": " + v + " " + label));
          root.append(rect);
        });
      });
    } else {
      // Per hour: one stacked bar per hour, its counts as a tooltip.
      const bw = Math.max(0.6, slot * 0.8);
      buckets.forEach((b, i) => {
        let base = 0;
        const x = x0 + slot * i + (slot - bw) / 2;
        SERIES.forEach(([k]) => {
          const v = b[k] || 0;
          if (v > 0) root.append(svg("rect", { class: k, x: x, y: y(base + v), width: bw, height: y(base) - y(base + v) }));
          base += v;
        });
        const col = svg("rect", { x: x0 + slot * i, y: y1, width: slot, height: y0 - y1, fill: "transparent" });
        col.append(svg("title", {}, shortTime(b.time).slice(0, 16) + " — " + SERIES.map(([k, label]) => (b[k] || 0) + " " + label).join(", ")));
        root.append(col);
      });
    }
    $("#activity-chart").replaceChildren(root);
  }

  // ------------------------------------------------------------ coupon lookup

  async function lookup(ev) {
    ev.preventDefault();
    const by = $("#lookup-by").value;
    const value = $("#lookup-value").value.trim();
    say("#lookup-msg", "");
    $("#lookup-list").replaceChildren();
    $("#coupon-detail").replaceChildren();
    if (!value) return say("#lookup-msg", "Enter a value to look up.", "error");
    try {
      if (by === "coupon") return await showCoupon(value);
      const param = by === "user" ? "user_code" : "order_id";
      const r = await api("GET", "/admin/coupons?" + param + "=" + encodeURIComponent(value) + "&limit=100");
      if (r.code !== 0) return say("#lookup-msg", r.code + " " + r.message, "error");
      const coupons = r.data.coupons || [];
      if (coupons.length === 0) return say("#lookup-msg", "No coupon found for " + param + " " + value + ".", "info");
      if (coupons.length === 1) return await showCoupon(coupons[0].coupon_id);
      const more = r.data.next_after ? " (first 100)" : "";
      say("#lookup-msg", coupons.length + " coupons" + more + ": pick one to see its journal.", "info");
      $("#lookup-list").replaceChildren(
        h(
          "ul",
          { class: "coupon-list" },
          coupons.map((c) =>
            h(
              "li",
              {},
              h("button", { type: "button", class: "linklike mono", text: c.coupon_id, onclick: () => showCoupon(c.coupon_id) }),
              " · " + c.stock_id + " · " + c.user_code + " · " + (COUPON_STATUS[c.coupon_status] || c.coupon_status)
            )
          )
        )
      );
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#lookup-msg", e.message, "error");
    }
  }

  function describe(j) {
    const d = j.detail || {};
    const parts = [];
    if (j.event === "redeem" || j.event === "unredeem") {
      if (d.order_id) parts.push("order " + d.order_id);
      if (typeof d.order_amount === "number") parts.push("amount " + fen(d.order_amount));
      if (typeof d.discount_amount === "number") parts.push("discount " + fen(d.discount_amount));
      if (typeof d.pay_amount === "number") parts.push("paid " + fen(d.pay_amount));
    }
    if (d.reason) parts.push("reason: " + d.reason);
    if (d.request_id) parts.push("request " + d.request_id);
    return parts.join(" · ");
  }

  async function showCoupon(id) {
    const r = await api("GET", "/admin/coupons/" + encodeURIComponent(id));
    if (r.code !== 0) return say("#lookup-msg", r.code + " " + r.message, "error");
    const c = r.data.coupon;
    const kv = (k, v) => [h("dt", { text: k }), h("dd", { text: v === null || v === undefined ? "–" : v })];
    const events = (r.data.journal || []).map((j) => {
      const move = j.from_status ? (COUPON_STATUS[j.from_status] || j.from_status) + " → " + (COUPON_STATUS[j.to_status] || j.to_status) : COUPON_STATUS[j.to_status] || "";
      return h(
        "li",
        { class: j.event, "data-event": j.event },
        h("span", { class: "when", text: shortTime(j.time) + " · " + j.source + (j.seq_id ? " · " + j.seq_id : "") }),
        h("b", { text: EVENT_LABEL[j.event] || j.event }),
        move ? " (" + move + ")" : "",
        describe(j) ? h("span", { class: "sub", text: describe(j) }) : null
      );
    });
    $("#coupon-detail").replaceChildren(
      h(
        "div",
        { class: "coupon", "data-coupon": c.coupon_id },
        h("h3", {}, "Coupon ", h("span", { class: "mono", text: c.coupon_id }), " ", h("span", { class: "badge", text: COUPON_STATUS[c.coupon_status] || c.coupon_status })),
        h(
          "dl",
          { class: "kv" },
          kv("stock", c.stock_id),
          kv("user", c.user_code),
          kv("phone", c.mobile_phone),
          kv("received", shortTime(c.receive_time)),
          kv("valid", shortTime(c.available_begin_time) + " – " + shortTime(c.available_end_time)),
          kv("used", c.usage_time ? shortTime(c.usage_time) : null)
        ),
        h("ol", { class: "timeline", "aria-label": "journal" }, events)
      )
    );
  }

  // ------------------------------------------------------------ vouchers

  async function voucherLookup(ev) {
    ev.preventDefault();
    say("#voucher-msg", "");
    $("#voucher-detail").replaceChildren();
    const type = $("#voucher-type").value;
    const no = $("#voucher-no").value.trim();
    try {
      const r = await api("GET", "/admin/vouchers/" + encodeURIComponent(type) + "/" + encodeURIComponent(no));
      if (r.code !== 0) return say("#voucher-msg", r.code + " " + r.message, "error");
      const v = r.data;
      const kv = (k, x) => [h("dt", { text: k }), h("dd", { text: x === null || x === undefined || x === "" ? "–" : x })];
      $("#voucher-detail").replaceChildren(
        h(
          "div",
          { class: "coupon" },
          h("h3", {}, v.type + " ", h("span", { class: "mono", text: v.couponNo })),
          h(
            "dl",
            { class: "kv" },
            kv("name", v.couponName),
            kv("value", fen(v.valueFen)),
            kv("price", fen(v.priceFen)),
            kv("uses left", v.remaining + " of " + v.count),
            kv("valid", shortTime(v.validityBegin) + " – " + shortTime(v.validityEnd)),
            kv("shops", (v.shopIds || []).join(", "))
          ),
          h(
            "ol",
            { class: "timeline" },
            (v.verifications || []).map((x) =>
              h(
                "li",
                { class: x.cancelTime ? "unredeem" : "redeem" },
                h("span", { class: "when", text: shortTime(x.verifyTime) + " · shop " + x.shopId }),
                h("b", { text: "Verified ×" + x.count }),
                " (" + x.remainingAfter + " left)",
                x.cancelTime ? h("span", { class: "sub", text: "cancelled " + shortTime(x.cancelTime) }) : null
              )
            )
          )
        )
      );
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#voucher-msg", e.message, "error");
    }
  }

  async function loadVoucherList() {
    const r = await api("GET", "/admin/vouchers?limit=100");
    if (r.code !== 0) return say("#voucher-list-msg", r.code + " " + r.message, "error");
    const list = r.data.vouchers || [];
    $("#voucher-table tbody").replaceChildren(
      ...list.map((v) =>
        h(
          "tr",
          {},
          h("td", { "data-label": "Type", text: v.type }),
          h("td", { "data-label": "couponNo" }, h("button", { type: "button", class: "linklike mono", text: v.couponNo, onclick: (e) => { $("#voucher-type").value = v.type; $("#voucher-no").value = v.couponNo; voucherLookup(e); } })),
          h("td", { "data-label": "Name", text: v.couponName }),
          h("td", { class: "num", "data-label": "Remaining", text: v.remaining }),
          h("td", { "data-label": "Valid until", text: shortTime(v.validityEnd) })
        )
      )
    );
    $("#voucher-table").hidden = list.length === 0;
    const total = r.data.total;
    say("#voucher-list-msg", list.length ? total + " voucher(s)" + (total > list.length ? ", first " + list.length + " shown" : "") + "." : "No vouchers imported.", "info");
  }

  // ------------------------------------------------------------ report

  async function downloadReport(ev) {
    ev.preventDefault();
    const date = $("#report-date").value;
    if (!/^\d{4}-\d\d-\d\d$/.test(date)) return say("#report-msg", "date: pick a day", "error");
    say("#report-msg", "Fetching the report for " + date + "…", "info");
    try {
      // A plain link cannot carry the bearer token: fetch, then offer the file.
      const r = await api("GET", "/admin/report?date=" + encodeURIComponent(date));
      const type = r.raw.headers.get("Content-Type") || "";
      if (type.includes("json")) return say("#report-msg", r.code + " " + r.message, "error");
      const blob = await r.raw.blob();
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: "coupon-ledger-report-" + date + ".csv", hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      say("#report-msg", "Downloaded the report for " + date + " (" + blob.size + " bytes).", "ok");
    } catch (e) {
      if (!(e instanceof SignedOut)) say("#report-msg", e.message, "error");
    }
  }

  // ------------------------------------------------------------ start

  function start() {
    $("#signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("#token").value.trim();
      if (!t) return say("#signin-msg", "Enter the admin token.", "error");
      signIn(t);
    });
    $("#sign-out").addEventListener("click", () => signOut("Signed out; the token is forgotten."));
    $("#refresh").addEventListener("click", () => loadAll());
    $("#stock-form").addEventListener("submit", createStock);
    $("#lookup-form").addEventListener("submit", lookup);
    $("#voucher-form").addEventListener("submit", voucherLookup);
    $("#report-form").addEventListener("submit", downloadReport);
    $("#activity-unit").addEventListener("change", () => guarded("#activity-msg", loadActivity));
    $("#activity-days").addEventListener("change", () => guarded("#activity-msg", loadActivity));
    $("#report-date").addEventListener("change", (ev) => (ev.target.dataset.picked = "1"));
    showServerToday();
    prepareStockForm();
    if (token()) signIn(token());
    else $("#token").focus();
  }

  start();
})();
