(function () {
  "use strict";
  // Progressive enhancement only: without this script the page is complete and <noscript> meta-refreshes it.
  var live = document.getElementById("live"), note = document.getElementById("refresh-note"), chosen = {};
  function rel(t, now) {
    var d = Math.abs(now - t) / 1000, n, u;
    if (d < 60) return "just now";
    if (d >= 86400) { n = Math.floor(d / 86400); u = "day"; }
    else if (d >= 3600) { n = Math.floor(d / 3600); u = "hour"; }
    else { n = Math.floor(d / 60); u = "minute"; }
    u = n + " " + u + (n === 1 ? "" : "s");
    return t > now ? "in " + u : u + " ago";
  }
  function ages() {
    var now = Date.now();
    document.querySelectorAll("time[data-rel]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = rel(t, now);
    });
  }
  ages();
  setInterval(ages, 15000);
  if (!live) return;
  // Remember only what the reader chose, so a refresh keeps it while the server still opens new problems.
  document.addEventListener("click", function (e) {
    var s = e.target.closest && e.target.closest("summary"), d = s && s.parentNode;
    if (d && d.id) setTimeout(function () { chosen[d.id] = d.open; }, 0);
  });
  function say(text) {
    if (!note) return;
    note.textContent = text;
    note.hidden = !text;
  }
  function refresh() {
    fetch(location.href, { cache: "no-cache", headers: { Accept: "text/html" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, "text/html"), fresh = doc.getElementById("live");
      if (!fresh) throw new Error("no status in the response");
      Object.keys(chosen).forEach(function (id) {
        var d = doc.getElementById(id);
        if (d) d.open = chosen[id];
      });
      var focus = document.activeElement, group = focus && live.contains(focus) && focus.closest("details[id]");
      live.replaceWith(fresh);
      live = fresh;
      document.title = doc.title;
      if (group) {
        var again = document.getElementById(group.id);
        if (again) again.querySelector("summary").focus();
      }
      ages();
      say("");
    }).catch(function () {
      say("Could not refresh this page at " + new Date().toISOString().slice(11, 16) +
          " UTC: what it shows may be out of date.");
    });
  }
  setInterval(refresh, 1000 * (parseInt(live.getAttribute("data-refresh"), 10) || 60));
})();
