// Berth dashboard: an application's runtime log followed live from the server's event stream.
(function () {
  "use strict";
  function follow(pre) {
    var state = document.getElementById("follow-state");
    var source = new EventSource(pre.dataset.follow);
    function say(text) { if (state) state.textContent = text; }
    source.onopen = function () { say("Following: new lines appear as they are written."); pre.dataset.open = "1"; };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) say("Not following: there is nothing to follow now. Reload to try again.");
      else say("Reconnecting…");
    };
    source.addEventListener("line", function (e) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      var text = e.data;
      try { var l = JSON.parse(e.data); text = l.service + "/" + l.replica + " " + l.line; } catch (err) {}
      pre.appendChild(document.createTextNode(text + "\n"));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.querySelector("pre[data-follow]");
    if (pre && window.EventSource) follow(pre);
  });
})();
