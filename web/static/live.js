// live.js follows a running build's or deployment's log: it appends the
// lines the server sends as Server-Sent Events to the log on the page.
// Without it the page still shows the log as it was when loaded.
//
// The page names the stream and the last line it shows:
//   <div id="live" data-events="/builds/12/log/events" data-after="340">
// Each event's data is one rendered line per data field (HTML the server
// escaped), its id the number of its last line; the browser resumes after
// that id by itself when the connection drops. An "end" event carries the
// run's final state, and the stream is closed for good.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var log = document.getElementById("log");
  if (!live || !log || !window.EventSource) {
    return;
  }
  var url = live.dataset.events + "?after=" + encodeURIComponent(live.dataset.after || "0");
  var es = new EventSource(url);

  // Follow the end of the log while the reader is there; leave them be
  // when they scrolled up to read.
  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  es.onmessage = function (e) {
    var follow = atBottom();
    log.insertAdjacentHTML("beforeend", e.data + "\n");
    if (follow) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  };

  es.addEventListener("end", function (e) {
    es.close();
    var end = JSON.parse(e.data);
    var state = document.getElementById("state");
    if (state) {
      state.textContent = end.state;
      state.className = end.state;
    }
    var following = document.getElementById("following");
    if (following) {
      following.textContent = "(" + end.state + (end.reason ? ": " + end.reason : "") + ")";
    }
  });
})();
