// Berth dashboard: the deployment log, followed live from the server's event stream, and confirmations.
(function () {
  "use strict";
  function follow(pre) {
    var source = new EventSource(pre.dataset.src);
    function add(text) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(text + "\n"));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    source.addEventListener("log", function (e) {
      try { add(JSON.parse(e.data).line); } catch (err) { add(e.data); }
    });
    source.addEventListener("end", function (e) {
      source.close();
      var state = "";
      try { state = JSON.parse(e.data).state || ""; } catch (err) { state = e.data; }
      pre.dataset.ended = state;
      add("-- " + state);
      if (window.htmx) htmx.ajax("GET", location.pathname + "/timeline", { target: "#timeline", swap: "outerHTML" });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("log");
    if (pre && window.EventSource) follow(pre);
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
    });
  });
})();
