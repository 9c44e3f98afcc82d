// platform ui: live updates without a reload. The server renders every row; this file only
// swaps in what the event stream (/events, one watch on Applications for the whole server)
// sends, and loads an Application's diff on its page. No library, nothing from the network.
"use strict";
(function () {
  var live = document.getElementById("live");
  var appKey = document.body.getAttribute("data-app") || "";
  var pending = null;

  function setLive(on, text) {
    if (!live) return;
    live.className = "live " + (on ? "on" : "idle");
    live.textContent = text;
  }

  function swapRow(kind, key, html) {
    var selector = 'tr[data-row="' + kind + '"][data-key="' + CSS.escape(key) + '"]';
    var row = document.querySelector(selector);
    var holder = document.createElement("tbody");
    holder.innerHTML = html;
    var fresh = holder.firstElementChild;
    if (!fresh) return;
    fresh.classList.add("flash");
    if (row) {
      row.replaceWith(fresh);
      return;
    }
    var table = document.querySelector("table." + kind + " tbody");
    if (!table) return;
    var empty = table.querySelector("tr.empty");
    if (empty) empty.remove();
    table.appendChild(fresh);
  }

  function addActivity(lines) {
    var list = document.getElementById("activity");
    if (!list) return;
    lines.forEach(function (entry) {
      var item = document.createElement("li");
      var time = document.createElement("time");
      time.textContent = new Date(entry[0] * 1000).toTimeString().slice(0, 8);
      item.appendChild(time);
      item.appendChild(document.createTextNode(" " + entry[1]));
      item.className = "fresh";
      list.insertBefore(item, list.firstChild);
      setTimeout(function () { item.className = ""; }, 1500);
    });
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function refreshApp() {
    // Coalesce a burst of changes into one fetch of this Application's live part.
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      var holder = document.getElementById("app-live");
      if (!holder) return;
      fetch(holder.getAttribute("data-src"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) holder.innerHTML = html; });
    }, 50);
  }

  function connect() {
    if (!window.EventSource) return;
    var source = new EventSource("/events");
    var lost = false;
    source.onopen = function () {
      setLive(true, "● live");
      // Changes made while the stream was away (or before it first opened) were not
      // sent to this tab: after an outage load the page again; on an Application's
      // page, fetch its live part once.
      if (lost) window.location.reload();
      else if (appKey) refreshApp();
    };
    source.onerror = function () {
      lost = true;
      setLive(false, "○ reconnecting");
    };
    source.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.reload) {
        window.location.reload();
        return;
      }
      if (message.rows) {
        Object.keys(message.rows).forEach(function (kind) {
          swapRow(kind, message.key, message.rows[kind]);
        });
      }
      if (message.deleted) {
        document.querySelectorAll('tr[data-key="' + CSS.escape(message.key) + '"]')
          .forEach(function (row) { row.remove(); });
      }
      if (message.activity && message.activity.length) addActivity(message.activity);
      if (appKey && message.key === appKey) refreshApp();
    };
  }

  var diff = document.getElementById("diff");
  if (diff) {
    diff.setAttribute("aria-busy", "true");
    fetch(diff.getAttribute("data-src"), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { diff.innerHTML = html; diff.removeAttribute("aria-busy"); });
  }
  connect();
})();
