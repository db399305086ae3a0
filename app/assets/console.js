// kefu console: live updates over server-sent events, and canned replies. The pages work
// without it (reload to see changes).
(function () {
  "use strict";
  var body = document.body;
  var live = body.dataset.live;
  var key = body.dataset.key || "";

  // Canned replies: a click puts the text in the reply box; the search box filters the list.
  var reply = document.querySelector("#reply textarea");
  var list = document.getElementById("canned");
  if (reply && list) {
    list.addEventListener("click", function (e) {
      var button = e.target.closest("button[data-text]");
      if (!button) return;
      reply.value = reply.value ? reply.value + "\n" + button.dataset.text : button.dataset.text;
      reply.focus();
    });
    var search = document.getElementById("canned-search");
    search.addEventListener("input", function () {
      var q = search.value.toLowerCase();
      list.querySelectorAll("li").forEach(function (li) {
        var b = li.querySelector("button");
        var text = (b.textContent + " " + b.dataset.text).toLowerCase();
        li.hidden = q !== "" && text.indexOf(q) < 0;
      });
    });
  }

  // A conversation opens at its latest messages.
  var transcript = document.getElementById("transcript");
  if (transcript) transcript.scrollTop = transcript.scrollHeight;

  if (live !== "queue" && live !== "conversation") return;
  var target = live === "queue" ? "queue" : "live";
  var url = live === "queue" ? "/console/queue" : "/console/conversation/live?" + body.dataset.query;
  var timer = null;
  function refresh() {
    if (timer) return;
    timer = setTimeout(function () {
      timer = null;
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { location.href = "/console/login"; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (!html) return;
          var old = document.getElementById(target);
          if (!old) return;
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.firstElementChild;
          old.replaceWith(fresh);
          if (live === "conversation") {
            var t = document.getElementById("transcript");
            if (t) t.scrollTop = t.scrollHeight;
          }
          body.dataset.updated = String(Date.now());
        })
        .catch(function () {});
    }, 100);
  }
  var events = new EventSource("/console/events");
  events.addEventListener("change", function (e) {
    if (live === "queue" || e.data === key || e.data === "*") refresh();
  });
  // After a reconnect, catch up on what was missed.
  var opened = false;
  events.addEventListener("open", function () {
    if (opened) refresh();
    opened = true;
    body.dataset.connected = "1";
  });
  // Waiting times tick on the queue page.
  if (live === "queue") setInterval(refresh, 15000);
})();
