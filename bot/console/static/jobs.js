/* 岗位: a push's live progress. Polls the progress endpoint (the page's data-url) every 2 s with the
   session cookie and fills in the numbers; stops when every row is settled. No network beyond our own
   server, no inline handlers; without JavaScript the page shows the numbers as of its last load. */
(function () {
  "use strict";
  var box = document.getElementById("push-progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-url");
  var bar = document.getElementById("push-bar");
  var state = document.getElementById("push-state");
  var INTERVAL = 2000;

  function say(text) {
    state.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = text;
    state.appendChild(strong);
  }

  function show(data) {
    var cells = box.querySelectorAll("[data-key]");
    for (var i = 0; i < cells.length; i++) {
      var key = cells[i].getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(data, key)) { cells[i].textContent = String(data[key]); }
    }
    if (bar) {
      bar.max = Math.max(1, data.recipients);
      bar.value = data.recipients ? data.recipients - data.pending : 1;
    }
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) {
        show(data);
        if (data.finished) {
          say("发送完成。刷新页面可以看到按村的结果。");
          box.setAttribute("data-finished", "true");
        } else {
          say("正在发送…（每 2 秒更新）");
          window.setTimeout(tick, INTERVAL);
        }
      })
      .catch(function () {
        say("暂时取不到进度，稍后自动再试。");
        window.setTimeout(tick, INTERVAL * 3);
      });
  }

  window.setTimeout(tick, INTERVAL);
}());
