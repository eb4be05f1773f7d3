(function () {
  "use strict";
  var current = null;
  function each(selector, action) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), action);
  }
  function select(key, scroll) {
    var panel = document.getElementById("detail-" + key);
    if (!panel) { return; }
    if (current) { current.hidden = true; }
    each(".selected", function (el) { el.classList.remove("selected"); });
    each('[data-job="' + key + '"]', function (el) { el.classList.add("selected"); });
    panel.hidden = false;
    current = panel;
    document.getElementById("hint").hidden = true;
    var log = panel.querySelector(".log");
    if (log) { log.scrollTop = log.scrollHeight; }
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "#" + key);
    }
    if (scroll) { panel.scrollIntoView({ block: "start" }); }
  }
  function act(button) {
    var log = button.closest(".job-detail").querySelector(".log");
    if (!log) { return; }
    var action = button.getAttribute("data-action");
    if (action === "expand" || action === "collapse") {
      Array.prototype.forEach.call(log.querySelectorAll("details"), function (d) {
        d.open = action === "expand";
      });
    } else if (action === "top") {
      log.scrollTop = 0;
    } else if (action === "bottom") {
      log.scrollTop = log.scrollHeight;
    } else if (action === "wrap") {
      log.classList.toggle("wrap");
    }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button) { act(button); return; }
    var target = event.target.closest("[data-job]");
    if (target && !event.target.closest("a[href]:not([data-job])")) {
      event.preventDefault();
      select(target.getAttribute("data-job"), true);
    }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target.closest && event.target.closest("[data-job]");
    if (target && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      select(target.getAttribute("data-job"), true);
    }
  });
  function highlight(key, on) {
    each('.edges path[data-from="' + key + '"], .edges path[data-to="' + key + '"]', function (p) {
      p.classList.toggle("hl", on);
    });
  }
  each(".node", function (node) {
    var key = node.getAttribute("data-job");
    node.addEventListener("mouseenter", function () { highlight(key, true); });
    node.addEventListener("mouseleave", function () { highlight(key, false); });
  });
  var wanted = window.location.hash.slice(1);
  if (/^j[0-9]+$/.test(wanted)) { select(wanted, true); }
})();
