/* 满意度: live progress and the campaign's chart. The list page polls GET /api/v1/surveys, a campaign's
   page its stats, every 5 s with the session cookie, and fill in the numbers; the chart is drawn once from
   the JSON the page embeds (#survey-chart) with the vendored Chart.js. No network beyond our own server,
   no inline handlers; without JavaScript the tables carry every number. */
(function () {
  "use strict";
  var INTERVAL = 5000;

  function shown(value, format) {
    return format === "percent" ? (value * 100).toFixed(1) + "%" : String(value);
  }

  function fill(box, data) {
    var cells = box.querySelectorAll("[data-key]");
    for (var i = 0; i < cells.length; i++) {
      var key = cells[i].getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(data, key)) {
        cells[i].textContent = shown(data[key], cells[i].getAttribute("data-format"));
      }
    }
  }

  function poll(url, apply) {
    if (!window.fetch) { return; }
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.json();
        })
        .then(function (data) { if (apply(data)) { window.setTimeout(tick, INTERVAL); } })
        .catch(function () { window.setTimeout(tick, INTERVAL * 3); });
    }
    window.setTimeout(tick, INTERVAL);
  }

  var list = document.getElementById("campaigns");
  if (list) {
    poll(list.getAttribute("data-url"), function (data) {
      var open = false;
      data.items.forEach(function (item) {
        var row = list.querySelector('tr[data-campaign="' + item.id + '"]');
        if (row) { fill(row, item); }
        open = open || !item.closed;
      });
      return open;
    });
  }

  var progress = document.getElementById("progress");
  if (progress && progress.getAttribute("data-closed") !== "true") {
    poll(progress.getAttribute("data-url"), function (data) { fill(progress, data.total); return true; });
  }

  var canvas = document.getElementById("chart-rates");
  var source = document.getElementById("survey-chart");
  if (canvas && source && typeof Chart !== "undefined") {
    var chart = JSON.parse(source.textContent);
    var percent = function (values) { return values.map(function (v) { return Math.round(v * 1000) / 10; }); };
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false; /* old phones: draw once, at once */
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: [
          { label: "满意率 %", data: percent(chart.satisfaction_rate), backgroundColor: "#1a7f37" },
          { label: "答卷率 %", data: percent(chart.response_rate), backgroundColor: "#0b62c4" }
        ]
      },
      options: {
        indexAxis: "y", /* names read across, even on a phone */
        maintainAspectRatio: false,
        scales: { x: { beginAtZero: true, max: 100 } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }
}());
