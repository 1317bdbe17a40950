/*! status-bridge widget: <script src="https://STATUS-HOST/widget.js" data-target="#status" async></script>
 * Options (data- attributes on the script tag): data-target (CSS selector; default: a box placed after the
 * script), data-mode ("jsonp", the default, or "cors" for fetch), data-refresh (seconds; 0 = load once).
 * Builds its DOM with textContent only; its one global is the JSONP callback, removed once it has run. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) {
    // Very old browsers: the last script whose src names this file.
    var all = document.getElementsByTagName("script");
    for (var i = all.length - 1; i >= 0 && !script; i--) if (/\/widget\.js(\?|#|$)/.test(all[i].src)) script = all[i];
  }
  if (!script || !script.src) return;
  var base = new URL(".", script.src).href;
  // Page states and statuses by name (the page's palette); anything else, unknown and "no data" are grey.
  var COLOURS = {
    operational: "#1a7f37", up: "#1a7f37", minor: "#9a6700", partial: "#9a6700", major: "#cf222e",
    down: "#cf222e", maintenance: "#0969da"
  };
  var BY_CODE = { 0: "up", 1: "partial", 2: "down" }; // feeds from before page_state/status existed
  var GREY = "#59636e";
  var mode = script.getAttribute("data-mode") === "cors" ? "cors" : "jsonp";
  var refresh = parseInt(script.getAttribute("data-refresh") || "60", 10);
  var selector = script.getAttribute("data-target");
  var target = selector ? document.querySelector(selector) : null;
  if (!target) {
    target = document.createElement("div");
    script.parentNode.insertBefore(target, script.nextSibling);
  }

  function el(tag, text, style) {
    var node = document.createElement(tag);
    if (text != null) node.textContent = String(text);
    if (style) for (var k in style) node.style[k] = style[k];
    return node;
  }

  function badge(kind, name) {
    var colour = COLOURS.hasOwnProperty(kind) ? COLOURS[kind] : GREY;
    var span = el("span", null, { color: colour, fontWeight: "600", whiteSpace: "nowrap" });
    var dot = el("span", "\u25CF ", { color: colour });
    dot.setAttribute("aria-hidden", "true");
    span.appendChild(dot);
    span.appendChild(document.createTextNode(String(name)));
    return span;
  }

  function groupStale(g) {
    var s = Array.isArray(g.services) ? g.services : [];
    for (var i = 0; i < s.length; i++) if (s[i] && s[i].stale) return true;
    return false;
  }

  function render(data) {
    var box = el("div", null, { font: "inherit", lineHeight: "1.5", maxWidth: "28em" });
    box.className = "status-bridge-widget";
    var head = el("a", null, { fontWeight: "700", textDecoration: "none", color: "inherit" });
    head.href = base;
    // The page state decides the colour ("unknown" is grey whatever its code); older feeds: stale flag, code.
    var state = data.page_state || (data.stale ? "unknown" : BY_CODE[data.overall_status_code]);
    head.appendChild(badge(state, data.overall_status_name || "Status unknown"));
    box.appendChild(head);
    var list = el("ul", null, { listStyle: "none", margin: ".3em 0 0", padding: "0" });
    var groups = Array.isArray(data.groups) ? data.groups : [];
    for (var i = 0; i < groups.length; i++) {
      var g = groups[i] || {};
      var item = el("li", null, { display: "flex", justifyContent: "space-between", gap: "1em" });
      item.appendChild(el("span", g.name));
      var last = data.stale || groupStale(g);
      item.appendChild(badge(last ? "unknown" : g.status || BY_CODE[g.status_code], g.status_name + (last ? " (last known)" : "")));
      list.appendChild(item);
    }
    box.appendChild(list);
    if (data.last_updated) box.appendChild(el("small", "Updated " + String(data.last_updated).replace("T", " ").replace("Z", " UTC"), { color: GREY }));
    target.replaceChildren ? target.replaceChildren(box) : (target.textContent = "", target.appendChild(box));
    target.setAttribute("aria-live", "polite");
  }

  function failed() {
    if (!target.firstChild) target.appendChild(el("span", "Service status is unavailable right now.", { color: GREY }));
  }

  function jsonp() {
    var name = "statusBridge_" + Date.now().toString(36) + Math.random().toString(36).slice(2);
    var tag = document.createElement("script");
    var timer;
    function done() {
      clearTimeout(timer);
      try { delete window[name]; } catch (e) { window[name] = undefined; }
      if (tag.parentNode) tag.parentNode.removeChild(tag);
    }
    window[name] = function (data) { done(); render(data || {}); };
    tag.onerror = function () { done(); failed(); };
    timer = setTimeout(function () { done(); failed(); }, 15000);
    tag.async = true;
    tag.src = base + "api/services.json?callback=" + name;
    (document.head || document.documentElement).appendChild(tag);
  }

  function cors() {
    fetch(base + "api/services.json", { mode: "cors", credentials: "omit" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(render, failed);
  }

  function load() { (mode === "cors" && window.fetch ? cors : jsonp)(); }
  load();
  if (refresh > 0) setInterval(load, Math.max(refresh, 10) * 1000);
})();
