// provider-router dashboard: local times, charts, keyboard, live tail, copy. No inline scripts (CSP).
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) { el.textContent = when.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }); }
    });
  }

  var COLORS = ["#2f6fb2", "#2e7d4f", "#b3261e", "#a66300", "#7b4fb2", "#1f8a8a", "#b24f8d", "#6b7075"];

  function compact(value) {
    if (value == null) { return ""; }
    var size = Math.abs(value);
    if (size >= 1e9) { return (value / 1e9).toFixed(1).replace(/\.0$/, "") + "G"; }
    if (size >= 1e6) { return (value / 1e6).toFixed(1).replace(/\.0$/, "") + "M"; }
    if (size >= 1e4) { return (value / 1e3).toFixed(0) + "k"; }
    return String(Math.round(value * 100) / 100);
  }

  function chart(el, opts, data) {
    el.textContent = "";
    if (!data[0].length) { el.textContent = "No calls in this range."; el.classList.add("muted"); return; }
    var width = Math.max(el.clientWidth || 0, 300);
    var axes = [{}, { size: 56, values: function (u, splits) { return splits.map(compact); } }];
    new uPlot(Object.assign({ width: width, height: 200, legend: { live: false }, axes: axes }, opts), data, el);
  }

  function charts(root) {
    var blob = root.querySelector("#chart-data");
    if (!blob || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(blob.textContent);
    var t = d.times;
    var stacked = [t, d.ok.map(function (v, i) { return v + d.error[i] + d.incomplete[i]; }),
      d.error.map(function (v, i) { return v + d.incomplete[i]; }), d.incomplete];
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var kind = el.getAttribute("data-chart");
      if (kind === "calls") {
        chart(el, { series: [{}, { label: "ok", stroke: COLORS[1], fill: "rgba(46,125,79,.25)" },
          { label: "error", stroke: COLORS[2], fill: "rgba(179,38,30,.35)" },
          { label: "incomplete", stroke: COLORS[3], fill: "rgba(166,99,0,.45)" }] }, stacked);
      } else if (kind === "latency") {
        chart(el, { series: [{}, { label: "p50 ms", stroke: COLORS[0] }, { label: "p95 ms", stroke: COLORS[2] }] },
          [t, d.p50, d.p95]);
      } else if (kind === "tokens") {
        var names = Object.keys(d.tokens);
        chart(el, { series: [{}].concat(names.map(function (n, i) { return { label: n, stroke: COLORS[i % COLORS.length] }; })) },
          [t].concat(names.map(function (n) { return d.tokens[n]; })));
      }
    });
  }

  function autoRefresh() {
    var box = document.getElementById("autorefresh");
    if (!box) { return; }
    var timer = null;
    var key = "pr-autorefresh";
    box.checked = localStorage.getItem(key) === "1";
    function arm() {
      clearInterval(timer);
      if (box.checked) {
        timer = setInterval(function () {
          htmx.ajax("GET", location.href, { target: "#overview", select: "#overview", swap: "outerHTML" });
        }, 1000 * Number(box.getAttribute("data-every") || 30));
      }
    }
    box.addEventListener("change", function () { localStorage.setItem(key, box.checked ? "1" : "0"); arm(); });
    arm();
  }

  var TAIL_EVERY_MS = 2000;
  var TAIL_PENDING = 50; // at most this many pending rows asked about a poll (TAIL_LIMIT on the server)

  // A row's place: [timestamp, id] from its data-since; rows are shown newest first.
  function place(row) {
    var parts = row.getAttribute("data-since").split(".");
    return [Number(parts[0]), Number(parts[1])];
  }

  function newer(a, b) { return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]); }

  // A polled row replaces its pending self, or goes in its place by time; a shown ended row stays as it is.
  function mergeRow(body, row) {
    var shown = document.getElementById(row.id);
    if (shown) {
      if (shown.hasAttribute("data-pending") && !row.hasAttribute("data-pending")) {
        if (shown.classList.contains("selected")) { row.classList.add("selected"); }
        shown.replaceWith(row);
      }
      return;
    }
    var at = place(row);
    var later = Array.prototype.find.call(body.querySelectorAll("tr[data-since]"), function (r) {
      return newer(at, place(r));
    });
    body.insertBefore(row, later || null);
  }

  // Every few seconds: the newest calls (the server reads a little behind the newest shown, for
  // calls committed late) and the calls shown pending; each merged in by id.
  function liveTail() {
    var body = document.getElementById("rows");
    if (!body || !body.hasAttribute("data-tail")) { return; }
    var polling = false;
    setInterval(function () {
      if (polling) { return; }
      var newest = body.querySelector("tr[data-since]");
      var pending = Array.prototype.map.call(body.querySelectorAll("tr[data-pending]"), function (r) {
        return r.getAttribute("data-pending");
      }).slice(0, TAIL_PENDING);
      var url = new URL(body.getAttribute("data-tail"), location.href);
      url.searchParams.set("since", newest ? newest.getAttribute("data-since") : "0.0");
      if (pending.length) { url.searchParams.set("pending", pending.join(",")); }
      polling = true;
      fetch(url.pathname + url.search, { credentials: "same-origin" })
        .then(function (reply) { return reply.ok ? reply.text() : ""; })
        .then(function (html) {
          var fresh = document.createElement("template");
          fresh.innerHTML = html;
          fresh.content.querySelectorAll("tr[data-since]").forEach(function (row) {
            localTimes(row);
            mergeRow(body, row);
          });
        })
        .catch(function () { /* the next poll tries again */ })
        .finally(function () { polling = false; });
    }, TAIL_EVERY_MS);
  }

  function keyboard() {
    var table = document.getElementById("calls");
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (event.key === "/") {
        var search = document.querySelector("input[name=q]");
        if (search) { event.preventDefault(); search.focus(); }
        return;
      }
      if (!table) { return; }
      var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-href]"));
      if (!rows.length) { return; }
      var at = rows.findIndex(function (r) { return r.classList.contains("selected"); });
      if (event.key === "j" || event.key === "k") {
        var next = event.key === "j" ? Math.min(at + 1, rows.length - 1) : Math.max(at - 1, 0);
        if (at >= 0) { rows[at].classList.remove("selected"); }
        rows[next].classList.add("selected");
        rows[next].scrollIntoView({ block: "nearest" });
        event.preventDefault();
      } else if (event.key === "Enter" && at >= 0) {
        location.href = rows[at].getAttribute("data-href");
      }
    });
  }

  function copyButtons() {
    document.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-copy]");
      if (!button) { return; }
      var source = document.getElementById(button.getAttribute("data-copy"));
      var text = source ? source.textContent : "";
      var done = function () { button.textContent = "copied"; setTimeout(function () { button.textContent = "copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
      } else { fallbackCopy(text); done(); }
    });
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
  }

  function submitOnChange() {
    document.addEventListener("change", function (event) {
      if (event.target.matches("[data-submit]")) { event.target.form.requestSubmit(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    charts(document);
    autoRefresh();
    liveTail();
    keyboard();
    copyButtons();
    submitOnChange();
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    localTimes(event.detail.elt.parentNode || document);
    if (event.detail.elt.id === "overview" || event.detail.target.id === "overview") { charts(document); }
  });
})();
