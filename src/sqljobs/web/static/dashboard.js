/* sqljobs dashboard: live refresh, throughput chart, confirmations.
   Hand-written, no dependencies, no build step. Served by the router itself. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = { completed: "#2f9e44", discarded: "#e03131", cancelled: "#868e96" };
  var SERIES = ["completed", "discarded", "cancelled"];

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hhmm(date) {
    return ("0" + date.getHours()).slice(-2) + ":" + ("0" + date.getMinutes()).slice(-2);
  }

  function niceMax(value) {
    if (value <= 4) return 4;
    if (value <= 8) return 8;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= value) return steps[i] * power;
    }
    return 10 * power;
  }

  /* Stacked bars: one per interval, completed at the bottom. */
  function drawChart(box, data) {
    var width = Math.max(box.clientWidth, 320), height = 200;
    var pad = { left: 44, right: 8, top: 10, bottom: 24 };
    var plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
    var points = data.points || [];
    var totals = points.map(function (p) { return p.completed + p.discarded + p.cancelled; });
    var top = niceMax(Math.max.apply(null, totals.concat([0])));
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height });
    var ticks = top % 4 === 0 ? 4 : 5;
    for (var g = 0; g <= ticks; g++) {
      var y = pad.top + plotH - (plotH * g) / ticks;
      svg.appendChild(el("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "gridline" }));
      svg.appendChild(el("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" },
        String(Math.round((top * g) / ticks * 10) / 10)));
    }
    var slot = plotW / Math.max(points.length, 1);
    var barW = Math.max(1, slot - Math.min(3, slot * 0.25));
    points.forEach(function (p, i) {
      var x = pad.left + i * slot, base = pad.top + plotH;
      var start = new Date(p.start);
      var label = hhmm(start) + "  completed " + p.completed + ", discarded " + p.discarded +
        ", cancelled " + p.cancelled;
      SERIES.forEach(function (name) {
        if (!p[name]) return;
        var h = (plotH * p[name]) / top;
        base -= h;
        var rect = el("rect", { x: x, y: base, width: barW, height: h, fill: COLORS[name], "data-series": name });
        rect.appendChild(el("title", {}, label));
        svg.appendChild(rect);
      });
    });
    if (points.length) {
      [0, Math.floor(points.length / 2), points.length - 1].forEach(function (i, n) {
        var anchor = ["start", "middle", "end"][n];
        var x = pad.left + i * slot + (n === 2 ? slot : n === 1 ? slot / 2 : 0);
        svg.appendChild(el("text", { x: x, y: height - 6, class: "axis", "text-anchor": anchor },
          hhmm(new Date(points[i].start))));
      });
    }
    var sum = totals.reduce(function (a, b) { return a + b; }, 0);
    svg.appendChild(el("text", { x: width - pad.right, y: pad.top + 10, class: "axis", "text-anchor": "end" },
      sum + " finished, " + Math.round((sum / (points.length * data.bucket_seconds || 1)) * 60 * 10) / 10 + "/min"));
    box.replaceChildren(svg);
    box.setAttribute("data-drawn", String(sum));
  }

  function loadChart() {
    var box = document.getElementById("throughput-chart");
    if (!box) return Promise.resolve();
    var url = box.getAttribute("data-url") + "?window=" + encodeURIComponent(box.getAttribute("data-window"));
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) { drawChart(box, data); })
      .catch(function () { box.textContent = "Throughput is not available right now."; });
  }

  function setStatus(text) {
    var status = document.getElementById("live-status");
    if (status) status.textContent = text;
  }

  /* Ask the server for this page's live fragment and swap it in (no full reload). */
  function refresh() {
    var live = document.querySelector("[data-live]");
    if (!live) return Promise.resolve();
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Sqljobs-Live": "1" } })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (html) {
        var open = live.querySelectorAll("details[open]").length;
        live.innerHTML = html;
        if (open === 0) live.querySelectorAll("details[open]").forEach(function (d) { d.open = false; });
        setStatus("");
      })
      .catch(function (err) { setStatus("(offline: " + err.message + ")"); });
  }

  function start() {
    var period = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 3000;
    var toggle = document.getElementById("live-toggle");
    var tick = function () {
      if (document.hidden || (toggle && !toggle.checked)) return;
      refresh();
      loadChart();
    };
    window.setInterval(tick, period);

    document.querySelectorAll("[data-window]").forEach(function (button) {
      if (button.tagName !== "BUTTON") return;
      button.addEventListener("click", function () {
        var box = document.getElementById("throughput-chart");
        box.setAttribute("data-window", button.getAttribute("data-window"));
        document.querySelectorAll("button.window").forEach(function (b) { b.classList.remove("active"); });
        button.classList.add("active");
        loadChart();
      });
    });

    /* Confirmation for destructive buttons; delegated so refreshed fragments keep it. */
    document.addEventListener("submit", function (event) {
      var button = event.submitter || event.target.querySelector("[data-confirm]");
      var question = button && button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });

    /* Filters apply as soon as a choice changes. */
    var filters = document.getElementById("filters");
    if (filters) {
      filters.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () { filters.submit(); });
      });
    }
    loadChart();
    window.addEventListener("resize", function () { loadChart(); });
  }

  window.sqljobsDashboard = { refresh: refresh, loadChart: loadChart };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
