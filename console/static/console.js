// 12345 console: countdowns on the platform's clock, live board refresh over SSE.
(function () {
  "use strict";
  var offsetMs = 0; // platform clock minus browser clock

  function readServerNow(root) {
    var holders = (root || document).querySelectorAll("[data-now]");
    var el = holders.length ? holders[holders.length - 1] : document.body;
    var iso = el.getAttribute("data-now") || el.getAttribute("data-server-now");
    if (iso) { offsetMs = Date.parse(iso) - Date.now(); }
  }

  function two(n) { return n < 10 ? "0" + n : "" + n; }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) { return d + "天" + h + "小时"; }
    if (h) { return h + "小时" + two(m) + "分"; }
    return m + "分" + two(s % 60) + "秒";
  }

  function tick() {
    var now = Date.now() + offsetMs;
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left >= 0 ? "剩余 " + span(left) : "已超时 " + span(left);
      el.classList.toggle("late", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 3600 * 1000);
    });
  }

  function connectLive() {
    var targets = document.querySelectorAll("[data-live]");
    if (!targets.length || !window.EventSource) { return; }
    var source = new EventSource(targets[0].getAttribute("data-live"));
    var timer = null;
    source.addEventListener("sla", function (e) {
      document.body.setAttribute("data-last-sla", e.data);
      clearTimeout(timer);
      timer = setTimeout(function () {
        targets.forEach(function (el) { window.htmx.trigger(el, "sla-event"); });
      }, 200);
    });
    source.addEventListener("open", function () { document.body.setAttribute("data-live-open", "1"); });
  }

  // Alt+<key> clicks the element marked data-key="<key>" (the same in every browser,
  // unlike accesskey): the workbench is usable from the keyboard alone.
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey || !e.key) { return; }
    var target = document.querySelector('[data-key="' + e.key.toLowerCase() + '"]');
    if (target) { e.preventDefault(); target.click(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    readServerNow();
    tick();
    setInterval(tick, 1000);
    connectLive();
    document.body.addEventListener("htmx:afterSwap", function (e) { readServerNow(e.target); tick(); });
  });
})();
