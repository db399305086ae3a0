// kefu web chat: sends messages without reloading the page and shows new lines live.
// The page works without this script (plain form posts); the conversation itself is rendered
// by the server, so this only adds what happens after the page loaded.
(function () {
  "use strict";
  var main = document.getElementById("chat");
  if (!main || !window.fetch || !window.EventSource) return;
  var d = main.dataset;
  var log = document.getElementById("log");
  var form = document.getElementById("send");
  var quick = document.getElementById("quick");
  var input = form.querySelector("textarea");
  var status = document.getElementById("status");
  var next = parseInt(d.next, 10) || 0;
  // Ids of the messages this page sent: their lines (and the bot's answers after them)
  // are already shown when the stream brings them.
  var mine = {};
  var typing = null;

  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "w" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function who(speaker) {
    return speaker === "customer" ? d.you : speaker === "agent" ? d.agent : d.bot;
  }

  function add(speaker, text) {
    var li = document.createElement("li");
    li.className = "msg " + speaker;
    var name = document.createElement("span");
    name.className = "who";
    name.textContent = who(speaker);
    var p = document.createElement("p");
    p.textContent = text;
    li.appendChild(name);
    li.appendChild(p);
    log.insertBefore(li, typing && typing.parentNode === log ? typing : null);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  function buttons(list) {
    quick.querySelectorAll("button").forEach(function (b) { b.remove(); });
    (list || []).forEach(function (q) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = q.label;
      b.addEventListener("click", function () { send(q.payload, q.label); });
      quick.appendChild(b);
    });
  }

  function showTyping(on) {
    if (on && !typing) {
      typing = document.createElement("li");
      typing.className = "msg bot typing";
      typing.textContent = d.typing;
      log.appendChild(typing);
      typing.scrollIntoView({ block: "end" });
    } else if (!on && typing) {
      typing.remove();
      typing = null;
    }
  }

  function note(text) {
    status.textContent = text || "";
    status.hidden = !text;
  }

  // Sends a message; a retry uses the same id, so the server answers it only once.
  function send(text, label) {
    var id = newId();
    mine[id] = true;
    buttons([]);
    var li = add("customer", label || text);
    post(id, text, li, 0);
  }

  function post(id, text, li, tries) {
    showTyping(true);
    fetch("/chat/messages", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-kefu-csrf": d.csrf },
      body: JSON.stringify({ id: id, text: text })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        return { status: r.status, body: body };
      });
    }).then(function (res) {
      if (res.status === 200) {
        showTyping(false);
        li.classList.remove("failed");
        var last = [];
        (res.body.replies || []).forEach(function (reply) {
          add("bot", reply.text);
          last = reply.quick_replies || [];
        });
        buttons(last);
        return;
      }
      if (res.status === 403 && res.body.error !== "rate_limited_ip") {
        location.reload(); // the cookie or token is gone: start from the page again
        return;
      }
      if ((res.status === 503 || res.status === 429) && tries < 3) {
        setTimeout(function () { post(id, text, li, tries + 1); }, 1500 * (tries + 1));
        if (res.status === 429) note(d.tooFast);
        return;
      }
      throw new Error(res.body.message || ("HTTP " + res.status));
    }).catch(function () {
      if (tries < 2) {
        setTimeout(function () { post(id, text, li, tries + 1); }, 1000 * (tries + 1));
        return;
      }
      showTyping(false);
      li.classList.add("failed");
      li.title = d.failed;
      li.querySelector("p").setAttribute("data-failed", d.failed);
      li.onclick = function () {
        li.onclick = null;
        li.classList.remove("failed");
        post(id, text, li, 0);
      };
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    note("");
    send(text);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  quick.addEventListener("submit", function (e) {
    e.preventDefault();
    var b = e.submitter;
    if (b) send(b.value, b.textContent);
  });

  // New lines, live: agents' messages, notices, replies given in another tab.
  var skipping = false;
  var events = new EventSource("/chat/events?from=" + next);
  events.addEventListener("open", function () { note(""); });
  events.addEventListener("error", function () {
    if (events.readyState !== EventSource.OPEN) note(d.offline);
  });
  events.addEventListener("reset", function () { location.reload(); });
  events.addEventListener("lines", function (e) {
    note("");
    var data = JSON.parse(e.data);
    var last = null;
    data.lines.forEach(function (line) {
      if (line.speaker === "customer" && mine[line.message_id]) {
        skipping = true; // shown when it was sent, with the answer it got
        return;
      }
      if (skipping && line.speaker === "bot") return;
      skipping = false;
      add(line.speaker, line.text);
      last = line;
    });
    if (last) {
      if (last.speaker !== "customer") showTyping(false);
      buttons(last.quick_replies);
    }
    next = data.next;
  });
})();
