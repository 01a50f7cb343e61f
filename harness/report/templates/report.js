/* The report's timeline: unpack the inline data, draw one page of calls at a time.
   No libraries and no network: the data is a gzip+base64 blob in the page itself. */
(function () {
  "use strict";
  var body = document.body;
  var errors = 0;
  window.addEventListener("error", function () {
    errors += 1;
    body.setAttribute("data-js-errors", String(errors));
  });

  var TYPE = ["ok", "fail", "info"];
  var COLOUR = ["#3a9e5a", "#d9534f", "#e6a23c"];
  var FAULT = { partition: "#7e57c2", kill: "#c62828", pause: "#1565c0",
                latency: "#f9a825", stall: "#6d4c41" };
  var LB = { UP: "#3a9e5a", DOWN: "#d9534f", MAINT: "#8a93a6", DRAIN: "#e6a23c" };
  var LEFT = 86, RIGHT = 16, AXIS = 26, LB_H = 14, FAULT_H = 16, LANE_H = 13, BAR_H = 9;

  var D = null, page = 0, zoom = 1, target = -1;
  var view = document.getElementById("tl-view");
  var card = document.getElementById("tl-card");
  var pageInput = document.getElementById("tl-page");
  var range = document.getElementById("tl-range");

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  function unpack(b64) {
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser has no DecompressionStream"));
    }
    var bin = atob(b64.trim());
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  function niceStep(span, n) {
    var raw = span / Math.max(1, n);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (raw <= steps[i] * mag) return steps[i] * mag;
    return 10 * mag;
  }

  function draw() {
    var C = D.cols, P = D.pages[page], first = P[0], last = P[1], lo = P[2], hi = P[3];
    var width = Math.max(view.clientWidth || 1000, 900) * zoom;
    var inner = width - LEFT - RIGHT;
    function X(t) { return LEFT + (t - lo) / (hi - lo) * inner; }
    // Calls of this page, and those of the previous page still running when it starts.
    var ks = [];
    var prev = page > 0 ? D.pages[page - 1][0] : first;
    for (var k = prev; k < first; k++) if (C.e[k] < 0 || C.e[k] > lo) ks.push(k);
    for (k = first; k < last; k++) ks.push(k);
    var laneSet = {};
    ks.forEach(function (k) { laneSet[C.l[k]] = true; });
    var lanes = Object.keys(laneSet).map(Number).sort(function (a, b) { return a - b; });
    var laneY = {};
    var servers = Object.keys(D.lb).sort();
    var y = AXIS + servers.length * LB_H + FAULT_H;
    lanes.forEach(function (l, i) { laneY[l] = y + i * LANE_H; });
    var height = y + lanes.length * LANE_H + 8;
    var out = ['<svg class="tl" xmlns="http://www.w3.org/2000/svg" width="' + width +
               '" height="' + height + '">'];
    // faults: shaded through every lane, labelled in their own lane
    D.faults.forEach(function (f) {
      if (f.e < lo || f.s > hi) return;
      var x0 = X(Math.max(f.s, lo)), x1 = X(Math.min(f.e, hi));
      var c = FAULT[f.kind] || "#888";
      out.push('<rect x="' + x0 + '" y="' + AXIS + '" width="' + Math.max(1, x1 - x0) +
               '" height="' + (height - AXIS) + '" fill="' + c + '" fill-opacity=".12">' +
               '<title>' + esc(f.label) + '</title></rect>');
      out.push('<text x="' + (x0 + 3) + '" y="' + (AXIS + servers.length * LB_H + 12) +
               '" style="fill:' + c + '">' + esc(f.label) + (f.open ? " (never ended)" : "") +
               '</text>');
    });
    // time axis
    var step = niceStep((hi - lo) / 1e6, Math.max(4, Math.round(inner / 110)));
    for (var t = Math.ceil(lo / 1e6 / step) * step; t * 1e6 <= hi; t += step) {
      var xx = X(t * 1e6);
      out.push('<line x1="' + xx + '" x2="' + xx + '" y1="' + (AXIS - 4) + '" y2="' + height +
               '" stroke="#eef0f5"/><text x="' + xx + '" y="' + (AXIS - 8) +
               '" text-anchor="middle">' + (+t.toFixed(6)) + ' s</text>');
    }
    // the load balancer's view of each server
    servers.forEach(function (s, i) {
      var yy = AXIS + i * LB_H;
      out.push('<text x="4" y="' + (yy + 10) + '">LB ' + esc(s) + '</text>');
      D.lb[s].forEach(function (g) {
        if (g[1] < lo || g[0] > hi) return;
        var x0 = X(Math.max(g[0], lo)), x1 = X(Math.min(g[1], hi));
        out.push('<rect x="' + x0 + '" y="' + (yy + 2) + '" width="' + Math.max(1, x1 - x0) +
                 '" height="' + (LB_H - 4) + '" fill="' + (LB[g[2]] || "#8a93a6") +
                 '"><title>' + esc(s + " " + g[2] + " (" + g[3] + ") from " + g[0] / 1e6 +
                 " s") + '</title></rect>');
      });
    });
    // nemesis events: thin marks
    D.marks.forEach(function (m) {
      if (m.t < lo || m.t > hi) return;
      var xx = X(m.t);
      out.push('<line x1="' + xx + '" x2="' + xx + '" y1="' + AXIS + '" y2="' + height +
               '" stroke="#555" stroke-dasharray="2,3"><title>' +
               esc("op " + m.i + " · " + m.t / 1e6 + " s\n" + m.v) +
               '</title></line>');
    });
    lanes.forEach(function (l) {
      out.push('<text x="4" y="' + (laneY[l] + 10) + '">' + esc(C.lanes[l]) + '</text>');
    });
    ks.forEach(function (k) {
      var s = C.s[k], e = C.e[k], open = e < 0;
      var x0 = X(Math.max(s, lo)), x1 = X(open ? hi : Math.min(e, hi));
      out.push('<rect class="op' + (k === target ? " target" : "") + '" data-k="' + k +
               '" x="' + x0.toFixed(1) + '" y="' + (laneY[C.l[k]] + 2) + '" width="' +
               Math.max(1.5, x1 - x0).toFixed(1) + '" height="' + BAR_H + '" fill="' +
               COLOUR[C.t[k]] + '"' + (open || k < first ? ' fill-opacity=".45"' : "") +
               (open ? ' stroke-dasharray="3,2"' : "") + '/>');
      if (C.r[k] >= 0) {  // a resend of an indeterminate op: a tick where it starts
        out.push('<rect class="retry" x="' + x0.toFixed(1) + '" y="' + laneY[C.l[k]] +
                 '" width="1.5" height="' + (BAR_H + 4) + '" fill="#222"/>');
      }
    });
    out.push("</svg>");
    view.innerHTML = out.join("");
    pageInput.value = String(page + 1);
    range.textContent = "calls " + first + "–" + (last - 1) + " · " + (lo / 1e6).toFixed(3) +
      "–" + (hi / 1e6).toFixed(3) + " s";
    if (target >= 0) {
      var el = view.querySelector('rect[data-k="' + target + '"]');
      if (el) view.scrollLeft = Math.max(0, parseFloat(el.getAttribute("x")) - view.clientWidth / 2);
    }
  }

  function goPage(p) {
    if (!D) return;
    page = Math.max(0, Math.min(D.pages.length - 1, p));
    draw();
  }

  function callOf(opIndex) {
    var I = D.cols.i, a = 0, b = I.length - 1, best = -1;
    while (a <= b) {
      var m = (a + b) >> 1;
      if (I[m] <= opIndex) { best = m; a = m + 1; } else { b = m - 1; }
    }
    return best;
  }

  function pageOfCall(k) {
    for (var p = 0; p < D.pages.length; p++) if (k < D.pages[p][1]) return p;
    return D.pages.length - 1;
  }

  function goOp(opIndex) {
    if (!D || isNaN(opIndex)) return;
    var k = callOf(opIndex);
    if (k < 0) return;
    target = k;
    goPage(pageOfCall(k));
  }

  function goTime(s) {
    if (!D || isNaN(s)) return;
    var us = s * 1e6;
    for (var p = 0; p < D.pages.length; p++) {
      if (us < D.pages[p][3]) { target = -1; goPage(p); return; }
    }
    goPage(D.pages.length - 1);
  }

  function describe(k) {
    var C = D.cols, e = C.e[k];
    var lines = ["op " + C.i[k] + " · process " + C.p[k] + " (" + C.lanes[C.l[k]] + ") · " +
                 C.fs[C.f[k]] + " · " + TYPE[C.t[k]],
                 "invoked " + (C.s[k] / 1000).toFixed(3) + " ms" +
                 (e < 0 ? ", never completed" : ", completed " + (e / 1000).toFixed(3) +
                  " ms (" + ((e - C.s[k]) / 1000).toFixed(3) + " ms)"),
                 "value " + C.v[k]];
    if (C.r[k] >= 0) lines.push("retry of op " + C.r[k] + ": the same operation, resent");
    if (C.x[k]) lines.push("error " + C.x[k]);
    if (C.n[k]) lines.push("node " + C.n[k]);
    if (C.t[k] === 2) lines.push("info: it may have taken effect at any later time, or never");
    return lines.join("\n");
  }

  view.addEventListener("mousemove", function (ev) {
    var k = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-k");
    if (k === null || k === undefined || !D) { card.hidden = true; return; }
    card.textContent = describe(Number(k));
    card.hidden = false;
    card.style.left = Math.min(ev.clientX + 14, window.innerWidth - 580) + "px";
    card.style.top = (ev.clientY + 14) + "px";
  });
  view.addEventListener("mouseleave", function () { card.hidden = true; });

  function on(id, fn) { document.getElementById(id).addEventListener("click", fn); }
  on("tl-first", function () { goPage(0); });
  on("tl-prev", function () { goPage(page - 1); });
  on("tl-next", function () { goPage(page + 1); });
  on("tl-last", function () { goPage(D ? D.pages.length - 1 : 0); });
  on("tl-zoom-in", function () { zoom = Math.min(64, zoom * 2); if (D) draw(); });
  on("tl-zoom-out", function () { zoom = Math.max(1, zoom / 2); if (D) draw(); });
  pageInput.addEventListener("change", function () { goPage(Number(pageInput.value) - 1); });
  document.getElementById("tl-op").addEventListener("change", function (ev) {
    goOp(Number(ev.target.value));
  });
  document.getElementById("tl-time").addEventListener("change", function (ev) {
    goTime(Number(ev.target.value));
  });
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("[data-op], svg.cx .op");
    if (!a) return;
    var idx = Number(a.getAttribute("data-op") || a.getAttribute("data-index"));
    goOp(idx);
    document.getElementById("timeline").scrollIntoView();
    ev.preventDefault();
  });

  // A wide counterexample scrolls; start it where the search got stuck.
  Array.prototype.forEach.call(document.querySelectorAll("svg.cx"), function (svg) {
    var stuck = svg.querySelector(".op.unplaced rect");
    var box = svg.parentNode;
    var labels = svg.querySelector("g.lanes");
    function pin() {
      if (labels) labels.setAttribute("transform", "translate(" + box.scrollLeft + ",0)");
    }
    box.addEventListener("scroll", pin);
    if (stuck && box.scrollWidth > box.clientWidth) {
      box.scrollLeft = Math.max(0, parseFloat(stuck.getAttribute("x")) - box.clientWidth * 0.6);
    }
    pin();
  });

  var blob = document.getElementById("timeline-data").textContent;
  unpack(blob).then(function (data) {
    D = data;
    document.getElementById("tl-pages").textContent = String(D.pages.length);
    pageInput.max = String(D.pages.length);
    draw();
    body.setAttribute("data-timeline-calls", String(D.cols.s.length));
    body.setAttribute("data-ready", "1");
    body.setAttribute("data-render-ms", String(Math.round(performance.now())));
  }).catch(function (err) {
    view.innerHTML = '<p class="warn">The timeline could not be drawn: ' + esc(err.message) +
      '</p>';
    body.setAttribute("data-ready", "error");
    throw err;
  });
})();
