// Attune console: dates in the viewer's time zone, SLA countdowns, the inbox's live updates and the
// dashboard's trend chart. Served by the console itself; no inline script (strict CSP).
(function () {
  "use strict";
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); el.title = el.getAttribute("datetime"); }
    });
    root.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) { return; }
      var mins = Math.round((d.getTime() - Date.now()) / 60000);
      var abs = Math.abs(mins), h = Math.floor(abs / 60), m = abs % 60;
      var span = h >= 48 ? Math.round(h / 24) + " days" : (h ? h + " h " : "") + m + " min";
      el.textContent = mins >= 0 ? "due in " + span : "overdue by " + span;
      el.classList.toggle("overdue", mins < 0);
      el.title = fmt.format(d);
    });
    root.querySelectorAll("[data-tz]").forEach(function (el) { el.textContent = zone; });
  }

  function live() {
    var status = document.getElementById("live-status");
    if (!status) { return; }
    var url = status.getAttribute("data-live-url");
    var every = Math.max(1, Number(status.getAttribute("data-poll-s")) || 10) * 1000;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/sign-in?expired=1"); return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (data) {
          if (!data) { return; }
          if (data.signature !== status.getAttribute("data-signature")) {
            var region = document.getElementById("alerts-region");
            var counts = document.getElementById("counts-region");
            var focused = document.activeElement && region.contains(document.activeElement);
            var known = {};
            region.querySelectorAll("tr[data-alert-id]").forEach(function (r) { known[r.getAttribute("data-alert-id")] = true; });
            region.innerHTML = data.alerts;
            var fresh = 0;
            region.querySelectorAll("tr[data-alert-id]").forEach(function (r) {
              if (!known[r.getAttribute("data-alert-id")]) { r.classList.add("fresh"); fresh += 1; }
            });
            counts.innerHTML = data.counts;
            localize(region);
            status.setAttribute("data-signature", data.signature);
            status.textContent = "Updated " + fmt.format(new Date()) + ": " + (fresh ? fresh + " new, " : "") + data.open + " open alert" + (data.open === 1 ? "" : "s") + ".";
            if (focused) { region.focus(); }
          }
        })
        .catch(function () { status.textContent = "Live updates paused: the console did not answer. Retrying."; })
        .finally(function () { window.setTimeout(poll, every); });
    }
    window.setTimeout(poll, every);
  }

  function trend() {
    var table = document.getElementById("trend-table");
    var canvas = document.getElementById("trend-chart");
    var select = document.getElementById("trend-metric");
    if (!table || !canvas || !select) { return; }
    var note = document.getElementById("trend-suppressed");
    if (typeof window.Chart === "undefined") {
      canvas.parentNode.hidden = true;
      note.textContent = "The chart library is not installed (run make setup); the figures are in the table.";
      return;
    }
    var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.getAttribute("data-series"); });
    var months = [], series = {};
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      months.push(row.cells[0].getAttribute("data-month"));
      for (var i = 1; i < row.cells.length; i++) {
        var cell = row.cells[i], key = heads[i];
        series[key] = series[key] || { values: [], suppressed: [] };
        var v = cell.getAttribute("data-value");
        series[key].values.push(v === "" ? null : Number(v));
        series[key].suppressed.push(cell.getAttribute("data-suppressed") === "true");
      }
    });
    var chart = new window.Chart(canvas, {
      type: "line",
      data: { labels: months, datasets: [{ label: "", data: [], borderColor: "#0b5cad", backgroundColor: "#0b5cad", spanGaps: false, pointRadius: 4 }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
    });
    function show() {
      var key = select.value, s = series[key] || { values: [], suppressed: [] };
      var label = select.options[select.selectedIndex].text;
      chart.data.datasets[0].label = label;
      chart.data.datasets[0].data = s.values;
      chart.update();
      var gone = months.filter(function (_, i) { return s.suppressed[i]; });
      note.textContent = gone.length ? label + ": suppressed (fewer clients than the minimum) in " + gone.join(", ") + "; those months are left out of the line, not drawn as zero." : "";
    }
    select.addEventListener("change", show);
    show();
  }

  // The alert page: the client's alliance and outcome series (data from the page's JSON block, which
  // the CSP allows because it is never executed), with the alert's points marked.
  var MARK_STYLE = {
    trigger: { pointStyle: "triangle", color: "#9b1c1c" },
    trough: { pointStyle: "rectRot", color: "#4a1d96" },
    repair: { pointStyle: "star", color: "#14532d" },
    intake: { pointStyle: "rect", color: "#4f5963" }
  };
  var LINE_COLORS = ["#0b5cad", "#b45309", "#0f766e", "#6d28d9"];

  function seriesCharts() {
    var block = document.getElementById("series-data");
    if (!block) { return; }
    var note = document.getElementById("series-note");
    if (typeof window.Chart === "undefined") {
      document.querySelectorAll(".series-chart").forEach(function (el) { el.hidden = true; });
      note.textContent = "The chart library is not installed (run make setup); the scores are in the table.";
      return;
    }
    var panels = JSON.parse(block.textContent);
    var day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
    document.querySelectorAll("canvas[data-panel]").forEach(function (canvas) {
      var panel = panels[canvas.getAttribute("data-panel")];
      if (!panel) { return; }
      var datasets = panel.lines.map(function (line, i) {
        var c = LINE_COLORS[i % LINE_COLORS.length];
        return {
          type: "line", label: line.label, borderColor: c, backgroundColor: c, pointRadius: 3,
          data: line.points.map(function (p) { return { x: Date.parse(p.x), y: p.y }; })
        };
      });
      ["trigger", "trough", "repair", "intake"].forEach(function (kind) {
        var marks = panel.marks.filter(function (m) { return m.mark === kind; });
        if (!marks.length) { return; }
        var st = MARK_STYLE[kind];
        datasets.push({
          type: "scatter", label: marks[0].label, pointStyle: st.pointStyle, pointRadius: 9, pointHoverRadius: 11,
          borderColor: st.color, backgroundColor: st.color, showLine: false,
          data: marks.map(function (m) { return { x: Date.parse(m.x), y: m.y }; })
        });
      });
      // A not-on-track alert: the expected band at the trigger's session, a bar from low to high
      // with the median as a dash.
      var bands = panel.bands || [];
      bands.forEach(function (b, i) {
        var x = Date.parse(b.x);
        datasets.push({
          type: "line", label: i === 0 ? b.label : b.label + " (" + (i + 1) + ")", borderColor: "rgba(15, 118, 110, 0.45)",
          backgroundColor: "rgba(15, 118, 110, 0.45)", borderWidth: 10, pointRadius: 0, borderCapStyle: "butt",
          data: [{ x: x, y: b.low }, { x: x, y: b.high }]
        });
      });
      if (bands.length) {
        datasets.push({
          type: "scatter", label: "Expected median", pointStyle: "line", pointRadius: 10, borderWidth: 3,
          borderColor: "#0f766e", backgroundColor: "#0f766e", showLine: false,
          data: bands.map(function (b) { return { x: Date.parse(b.x), y: b.median }; })
        });
      }
      canvas.setAttribute("data-marks", panel.marks.map(function (m) { return m.mark; })
        .concat(bands.map(function () { return "band"; })).join(" "));
      new window.Chart(canvas, {
        data: { datasets: datasets },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          plugins: {
            title: { display: true, text: panel.title },
            legend: { labels: { usePointStyle: true } },
            tooltip: { callbacks: { title: function (items) { return items.length ? day.format(new Date(items[0].parsed.x)) : ""; } } }
          },
          scales: {
            x: { type: "linear", ticks: { maxTicksLimit: 6, callback: function (v) { return day.format(new Date(v)); } } },
            y: { min: panel.y_min, max: panel.y_max }
          }
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    live();
    trend();
    seriesCharts();
    window.setInterval(function () {
      document.querySelectorAll("time[data-countdown]").forEach(function (el) { localize(el.parentNode); });
    }, 60000);
  });
})();
