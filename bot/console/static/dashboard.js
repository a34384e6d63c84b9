/* 概览 charts: reads the JSON the page embeds (#dashboard-data) and draws it with the vendored Chart.js.
   No network, no inline handlers; without JavaScript the page's tables still carry every number. */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var green = "#1a7f37", grey = "#c7ced6", amber = "#bf8700";
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false; /* old phones: draw once, at once */

  var villages = document.getElementById("chart-villages");
  if (villages) {
    new Chart(villages, {
      type: "bar",
      data: {
        labels: data.villages,
        datasets: [
          { label: "已绑定", data: data.bound, backgroundColor: green },
          { label: "未绑定", data: data.unbound, backgroundColor: grey }
        ]
      },
      options: {
        indexAxis: "y", /* village names read across, even on a phone */
        maintainAspectRatio: false,
        scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  var days = document.getElementById("chart-days");
  if (days) {
    new Chart(days, {
      type: "line",
      data: {
        labels: data.days,
        datasets: [
          { label: "问题", data: data.questions, borderColor: green, backgroundColor: green, tension: 0 },
          { label: "转干部", data: data.handed_over, borderColor: amber, backgroundColor: amber, tension: 0 }
        ]
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }
})();
