// vae-course: kernel-free explorers on the web page (placed by book/_ext/explorers.py).
//
// Each <div class="course-explorer" data-kind=... data-data=...> is filled here and
// shown; without JavaScript it stays hidden and the notebook's static figures remain.
// Data: static/explorers/<name>.js (window.courseExplorerData[name]) and <name>.png,
// written by scripts/make_explorer_data.py from the shipped models. Nothing is
// fetched from outside the book.
(function () {
  "use strict";
  var SCRIPT = document.currentScript ? document.currentScript.src : "";
  // The digit colours of vae_course.plots.CLASS_COLORS (Paul Tol's "muted" + grey).
  var COLORS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                "#DDCC77", "#CC6677", "#882255", "#AA4499", "#777777"];
  var INK = "#222222", GRID = "#d9d9d9", Q_COLOR = "#CC6677", P_COLOR = "#777777";

  function el(tag, attrs, parent) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(x, digits) { return (x < 0 ? "−" : "") + Math.abs(x).toFixed(digits); }

  // --------------------------------------------------------------- data files
  function loadData(name) {
    var store = (window.courseExplorerData = window.courseExplorerData || {});
    if (store[name]) return Promise.resolve(store[name]);
    return new Promise(function (resolve, reject) {
      var s = el("script", { src: new URL("explorers/" + name + ".js", SCRIPT).href });
      s.onload = function () { store[name] ? resolve(store[name]) : reject(new Error("no data in " + s.src)); };
      s.onerror = function () { reject(new Error("could not load " + s.src)); };
      document.head.appendChild(s);
    });
  }

  function loadImage(file) {
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new Error("could not load " + img.src)); };
      img.src = new URL("explorers/" + file, SCRIPT).href;
    });
  }

  // ------------------------------------------------------ a canvas that fits
  // A canvas whose drawing buffer follows its CSS size (and the screen's pixel
  // ratio), redrawn by draw(ctx, width, height) whenever its width changes.
  function fittedCanvas(parent, cls, aspect, draw) {
    var canvas = el("canvas", { "class": cls }, parent);
    function redraw() {
      var w = canvas.clientWidth, h = Math.round(w * aspect), r = window.devicePixelRatio || 1;
      if (!w) return;
      canvas.style.height = h + "px";
      if (canvas.width !== Math.round(w * r) || canvas.height !== Math.round(h * r)) {
        canvas.width = Math.round(w * r); canvas.height = Math.round(h * r);
      }
      var ctx = canvas.getContext("2d");
      ctx.setTransform(r, 0, 0, r, 0, 0);
      ctx.clearRect(0, 0, w, h);
      draw(ctx, w, h);
    }
    if (window.ResizeObserver) new ResizeObserver(redraw).observe(canvas);
    else window.addEventListener("resize", redraw);
    canvas.redraw = redraw;
    return canvas;
  }

  // Axes of a latent plane: box [x0, x1] × [y0, y1] drawn inside margins.
  var M = { left: 34, right: 8, top: 8, bottom: 30 };
  function planeAxes(ctx, w, h, box) {
    var pw = w - M.left - M.right, ph = h - M.top - M.bottom;
    var ax = {
      x: function (z) { return M.left + (z - box[0]) / (box[1] - box[0]) * pw; },
      y: function (z) { return M.top + (box[3] - z) / (box[3] - box[2]) * ph; },
      zx: function (px) { return box[0] + (px - M.left) / pw * (box[1] - box[0]); },
      zy: function (py) { return box[3] - (py - M.top) / ph * (box[3] - box[2]); },
      pw: pw, ph: ph,
    };
    ctx.fillStyle = "#ffffff"; ctx.fillRect(M.left, M.top, pw, ph);
    ctx.strokeStyle = GRID; ctx.lineWidth = 1; ctx.fillStyle = INK;
    ctx.font = "11px system-ui, sans-serif";
    [[box[0], box[1], true], [box[2], box[3], false]].forEach(function (range) {
      var span = range[1] - range[0], step = niceStep(span / 5);
      for (var t = Math.ceil(range[0] / step) * step; t <= range[1] + 1e-9; t += step) {
        var v = Math.abs(t) < 1e-9 ? 0 : t;
        ctx.beginPath();
        if (range[2]) {
          ctx.moveTo(ax.x(v), M.top); ctx.lineTo(ax.x(v), M.top + ph); ctx.stroke();
          ctx.textAlign = "center"; ctx.fillText(label(v, step), ax.x(v), M.top + ph + 13);
        } else {
          ctx.moveTo(M.left, ax.y(v)); ctx.lineTo(M.left + pw, ax.y(v)); ctx.stroke();
          ctx.textAlign = "right"; ctx.fillText(label(v, step), M.left - 4, ax.y(v) + 4);
        }
      }
    });
    ctx.textAlign = "center";
    ctx.fillText("z₁", M.left + pw / 2, h - 3);
    ctx.save(); ctx.translate(10, M.top + ph / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("z₂", 0, 0); ctx.restore();
    ctx.strokeStyle = "#999999"; ctx.strokeRect(M.left + 0.5, M.top + 0.5, pw - 1, ph - 1);
    return ax;
  }

  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    return p * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
  }
  function label(v, step) { return fmt(v, step < 1 ? 1 : 0); }

  function drawCodes(ctx, ax, codes, labels, radius) {
    ctx.save();
    ctx.beginPath(); ctx.rect(M.left, M.top, ax.pw, ax.ph); ctx.clip();
    ctx.globalAlpha = 0.75;
    for (var i = 0; i < labels.length; i++) {
      ctx.fillStyle = COLORS[labels[i]];
      ctx.beginPath(); ctx.arc(ax.x(codes[2 * i]), ax.y(codes[2 * i + 1]), radius, 0, 2 * Math.PI); ctx.fill();
    }
    ctx.restore();
  }

  function legend(parent) {
    var ul = el("ul", { "class": "cx-legend", "aria-label": "dot colours: the digit of each test image" }, parent);
    COLORS.forEach(function (c, d) {
      var li = el("li", {}, ul);
      el("span", { "class": "cx-swatch", style: "background:" + c }, li);
      li.appendChild(document.createTextNode(String(d)));
    });
  }

  // ------------------------------------------------------------ KL explorer
  // KL(N(mu, sigma^2) || N(0, 1)) in nats: the closed form of notebook 4, section 2.
  function klNats(mu, sigma) { return 0.5 * (mu * mu + sigma * sigma - 1 - Math.log(sigma * sigma)); }
  function normalPdf(z, mu, sigma) {
    var u = (z - mu) / sigma;
    return Math.exp(-0.5 * u * u) / (sigma * Math.sqrt(2 * Math.PI));
  }

  function buildKL(root, body) {
    var state = { mu: 1.0, sigma: 0.61 };  // kl_explorer's defaults: mu = 1, log sigma^2 = -1
    var controls = el("div", { "class": "cx-controls" }, body);
    function slider(name, key, min, max, step, text) {
      var lab = el("label", { "class": "cx-slider" }, controls);
      el("span", { "class": "cx-slider-name", text: text }, lab);
      var input = el("input", { type: "range", min: min, max: max, step: step, value: state[key],
                                "data-param": name, "aria-label": text }, lab);
      var out = el("output", { "class": "cx-slider-value" }, lab);
      input.addEventListener("input", function () { state[key] = parseFloat(input.value); update(); });
      return out;
    }
    var muOut = slider("mu", "mu", -3, 3, 0.05, "μ");
    var sigmaOut = slider("sigma", "sigma", 0.1, 3, 0.01, "σ");
    var readout = el("p", { "class": "cx-readout cx-kl", "aria-live": "polite" }, body);
    var plot = fittedCanvas(body, "cx-kl-plot", 0.5, function (ctx, w, h) {
      var lo = Math.min(-4, state.mu - 4 * state.sigma), hi = Math.max(4, state.mu + 4 * state.sigma);
      var top = Math.max(normalPdf(0, 0, 1), normalPdf(state.mu, state.mu, state.sigma)) * 1.08;
      var L = 40, R = 10, T = 10, B = 30, pw = w - L - R, ph = h - T - B;
      var X = function (z) { return L + (z - lo) / (hi - lo) * pw; };
      var Y = function (p) { return T + ph - p / top * ph; };
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, w, h);
      ctx.strokeStyle = GRID; ctx.fillStyle = INK; ctx.font = "11px system-ui, sans-serif"; ctx.lineWidth = 1;
      var sx = niceStep((hi - lo) / 6), sy = niceStep(top / 4), t;
      for (t = Math.ceil(lo / sx) * sx; t <= hi + 1e-9; t += sx) {
        ctx.beginPath(); ctx.moveTo(X(t), T); ctx.lineTo(X(t), T + ph); ctx.stroke();
        ctx.textAlign = "center"; ctx.fillText(label(Math.abs(t) < 1e-9 ? 0 : t, sx), X(t), T + ph + 13);
      }
      for (t = 0; t <= top + 1e-9; t += sy) {
        ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(L + pw, Y(t)); ctx.stroke();
        ctx.textAlign = "right"; ctx.fillText(t.toFixed(sy < 0.1 ? 2 : 1), L - 4, Y(t) + 4);
      }
      ctx.textAlign = "center"; ctx.fillText("z", L + pw / 2, h - 3);
      ctx.save(); ctx.translate(10, T + ph / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("density", 0, 0); ctx.restore();
      function curve(mu, sigma) {
        ctx.beginPath();
        for (var i = 0; i <= 400; i++) {
          var z = lo + (hi - lo) * i / 400;
          ctx[i ? "lineTo" : "moveTo"](X(z), Y(normalPdf(z, mu, sigma)));
        }
      }
      curve(0, 1); ctx.lineTo(X(hi), Y(0)); ctx.lineTo(X(lo), Y(0)); ctx.closePath();
      ctx.globalAlpha = 0.3; ctx.fillStyle = P_COLOR; ctx.fill(); ctx.globalAlpha = 1;
      curve(state.mu, state.sigma); ctx.strokeStyle = Q_COLOR; ctx.lineWidth = 2.5; ctx.stroke();
      ctx.strokeStyle = "#999999"; ctx.lineWidth = 1; ctx.strokeRect(L + 0.5, T + 0.5, pw - 1, ph - 1);
      // a legend inside the plot, in the corner farther from q's peak
      var right = state.mu < (lo + hi) / 2, x0 = right ? L + pw - 150 : L + 8;
      ctx.textAlign = "left"; ctx.fillStyle = INK;
      ctx.globalAlpha = 0.3; ctx.fillStyle = P_COLOR; ctx.fillRect(x0, T + 8, 16, 8); ctx.globalAlpha = 1;
      ctx.fillStyle = INK; ctx.fillText("prior p = N(0, 1)", x0 + 22, T + 16);
      ctx.strokeStyle = Q_COLOR; ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.moveTo(x0, T + 28); ctx.lineTo(x0 + 16, T + 28); ctx.stroke();
      ctx.fillText("q = N(μ, σ²)", x0 + 22, T + 32);
    });
    plot.setAttribute("role", "img");
    function update() {
      var kl = klNats(state.mu, state.sigma);
      muOut.textContent = fmt(state.mu, 2);
      sigmaOut.textContent = state.sigma.toFixed(2);
      readout.innerHTML = "";
      // the encoder outputs log σ² (the notebook's slider): say what this σ is in those units
      readout.appendChild(document.createTextNode("log σ² = " + fmt(Math.log(state.sigma * state.sigma), 2) +
                                                  "\nKL(q ‖ p) = ½(μ² + σ² − 1 − log σ²) = "));
      el("strong", { "class": "cx-kl-value", "data-value": kl.toPrecision(12), text: kl.toFixed(4) }, readout);
      readout.appendChild(document.createTextNode(" nats"));
      plot.setAttribute("aria-label", "Densities of q = N(" + state.mu.toFixed(2) + ", " + state.sigma.toFixed(2) +
                        "²) and of the prior N(0, 1); KL = " + kl.toFixed(4) + " nats");
      plot.redraw();
    }
    update();
  }

  // -------------------------------------------------------- latent explorer
  function buildLatent(root, body, data, sprite) {
    var n = data.grid, tile = data.tile, box = [data.z_min[0], data.z_max[0], data.z_min[1], data.z_max[1]];
    var cell = { col: Math.floor(n / 2), row: Math.floor(n / 2) };
    var showGrid = false;
    var wrap = el("div", { "class": "cx-latent" }, body);
    var left = el("div", { "class": "cx-plane-wrap" }, wrap);
    var right = el("div", { "class": "cx-side" }, wrap);
    var ax = null;
    var plane = fittedCanvas(left, "cx-plane", 1, function (ctx, w, h) {
      ax = planeAxes(ctx, w, h, box);
      if (showGrid) {
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(sprite, M.left, M.top, ax.pw, ax.ph);
      }
      drawCodes(ctx, ax, data.codes, data.labels, w < 360 ? 1.4 : 1.8);
      // the grid point on display: a ring and its cell
      var z = centre(cell), x = ax.x(z[0]), y = ax.y(z[1]);
      ctx.strokeStyle = "#000000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.arc(x, y, 8.5, 0, 2 * Math.PI); ctx.stroke();
    });
    plane.setAttribute("tabindex", "0");
    plane.setAttribute("role", "application");
    plane.setAttribute("aria-label", "Latent plane: move the pointer, drag, or use the arrow keys to choose a code");
    var digit = el("canvas", { "class": "cx-digit", width: tile, height: tile, role: "img" }, right);
    var readout = el("p", { "class": "cx-readout", "aria-live": "polite" }, right);
    var toggle = el("label", { "class": "cx-toggle" }, right);
    var box1 = el("input", { type: "checkbox" }, toggle);
    toggle.appendChild(document.createTextNode(" show every decoded grid point on the plane"));
    box1.addEventListener("change", function () { showGrid = box1.checked; plane.redraw(); });
    legend(right);
    el("p", { "class": "cx-source", text: "Codes of " + data.codes_of + ". Digits: the " +
              n + " × " + n + " grid of " + data.box + ", decoded in advance by scripts/make_explorer_data.py " +
              "with the shipped " + data.model + "; the panel shows the grid point nearest the pointer." }, body);

    function centre(c) {
      return [box[0] + (c.col + 0.5) * (box[1] - box[0]) / n, box[3] - (c.row + 0.5) * (box[3] - box[2]) / n];
    }
    function nearestCode(z) {
      var best = Infinity, which = -1;
      for (var i = 0; i < data.labels.length; i++) {
        var dx = data.codes[2 * i] - z[0], dy = data.codes[2 * i + 1] - z[1], d = dx * dx + dy * dy;
        if (d < best) { best = d; which = i; }
      }
      return { label: data.labels[which], distance: Math.sqrt(best) };
    }
    function show() {
      var ctx = digit.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(sprite, cell.col * tile, cell.row * tile, tile, tile, 0, 0, tile, tile);
      var z = centre(cell), near = nearestCode(z);
      digit.dataset.cell = cell.col + "," + cell.row;
      digit.setAttribute("aria-label", "The digit decoded at z = (" + z[0].toFixed(2) + ", " + z[1].toFixed(2) + ")");
      readout.textContent = "z = (" + fmt(z[0], 2) + ", " + fmt(z[1], 2) + ")\nnearest test code: a " +
        near.label + ", " + near.distance.toFixed(2) + " away";
      plane.redraw();
    }
    function moveTo(px, py) {
      if (!ax) return;
      var col = Math.floor((ax.zx(px) - box[0]) / (box[1] - box[0]) * n);
      var row = Math.floor((box[3] - ax.zy(py)) / (box[3] - box[2]) * n);
      col = Math.max(0, Math.min(n - 1, col)); row = Math.max(0, Math.min(n - 1, row));
      if (col !== cell.col || row !== cell.row) { cell = { col: col, row: row }; show(); }
    }
    function fromEvent(e) {
      var r = plane.getBoundingClientRect();
      moveTo(e.clientX - r.left, e.clientY - r.top);
    }
    var dragging = false;
    plane.addEventListener("pointerdown", function (e) {
      dragging = true; plane.setPointerCapture(e.pointerId); fromEvent(e); e.preventDefault();
    });
    plane.addEventListener("pointermove", function (e) { if (dragging || e.pointerType === "mouse") fromEvent(e); });
    plane.addEventListener("pointerup", function () { dragging = false; });
    plane.addEventListener("pointercancel", function () { dragging = false; });
    plane.addEventListener("keydown", function (e) {
      var d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
      if (!d) return;
      e.preventDefault();
      cell = { col: Math.max(0, Math.min(n - 1, cell.col + d[0])), row: Math.max(0, Math.min(n - 1, cell.row + d[1])) };
      show();
    });
    show();
  }

  // ------------------------------------------------------ training animation
  function buildTraining(root, body, data) {
    var frames = data.frames, e = data.extent, box = [-e, e, -e, e], index = frames.length - 1, timer = null;
    var plane = fittedCanvas(el("div", { "class": "cx-plane-wrap cx-wide" }, body), "cx-plane", 1, function (ctx, w, h) {
      var ax = planeAxes(ctx, w, h, box);
      ctx.save(); ctx.strokeStyle = "#555555"; ctx.setLineDash([4, 4]); ctx.lineWidth = 1;
      [1, 2].forEach(function (r) {  // one and two standard deviations of the prior N(0, I)
        ctx.beginPath(); ctx.ellipse(ax.x(0), ax.y(0), ax.x(r) - ax.x(0), ax.y(0) - ax.y(r), 0, 0, 2 * Math.PI); ctx.stroke();
      });
      ctx.restore();
      drawCodes(ctx, ax, frames[index].codes, data.labels, w < 360 ? 1.4 : 1.8);
    });
    plane.setAttribute("role", "img");
    var controls = el("div", { "class": "cx-controls" }, body);
    var play = el("button", { type: "button", "class": "cx-play", text: "▶ play" }, controls);
    var lab = el("label", { "class": "cx-slider" }, controls);
    el("span", { "class": "cx-slider-name", text: "epoch" }, lab);
    var scrub = el("input", { type: "range", min: 0, max: frames.length - 1, step: 1, value: index,
                              "aria-label": "epoch", "data-param": "epoch" }, lab);
    var readout = el("p", { "class": "cx-readout", "aria-live": "polite" }, body);
    legend(body);
    el("p", { "class": "cx-source", text: "Codes of " + data.codes_of + ". Recorded by scripts/make_explorer_data.py: " +
              data.what_ran + "." }, body);
    function show(i) {
      index = i; scrub.value = i;
      var f = frames[i];
      readout.textContent = f.epoch === 0 ? "epoch 0: the untrained network" :
        "epoch " + f.epoch + " of " + (frames.length - 1) + ": test loss " + f.test_loss.toFixed(2) +
        " nats (reconstruction " + f.test_recon.toFixed(2) + " + KL " + f.test_kl.toFixed(2) + ")";
      plane.setAttribute("aria-label", "Codes of the test digits after epoch " + f.epoch);
      plane.dataset.epoch = String(f.epoch);
      plane.redraw();
    }
    function stop() { if (timer) { clearInterval(timer); timer = null; } play.textContent = "▶ play"; }
    scrub.addEventListener("input", function () { stop(); show(parseInt(scrub.value, 10)); });
    play.addEventListener("click", function () {
      if (timer) { stop(); return; }
      if (index >= frames.length - 1) show(0);
      play.textContent = "❚❚ pause";
      timer = setInterval(function () {
        if (index >= frames.length - 1) stop(); else show(index + 1);
      }, 600);
    });
    show(index);
  }

  // ------------------------------------------------------------------ start
  function build(root) {
    var body = root.querySelector(".course-explorer-body"), kind = root.dataset.kind, name = root.dataset.data;
    var ready = kind === "kl" ? Promise.resolve([null, null]) : loadData(name).then(function (data) {
      return data.sprite ? loadImage(data.sprite).then(function (img) { return [data, img]; }) : [data, null];
    });
    return ready.then(function (loaded) {
      if (kind === "kl") buildKL(root, body);
      else if (kind === "latent") buildLatent(root, body, loaded[0], loaded[1]);
      else if (kind === "training") buildTraining(root, body, loaded[0]);
      else throw new Error("unknown explorer kind " + kind);
      root.hidden = false;
      root.dataset.ready = "true";
      if (root.dataset.replacesWidget) {
        // The notebook's own ipywidgets explorer is frozen on the web: this one replaces it.
        var cell = root.previousElementSibling;
        if (cell && cell.classList.contains("cell")) cell.classList.add("course-explorer-replaced");
      }
      // the canvases learn their width only once visible
      root.querySelectorAll("canvas").forEach(function (c) { if (c.redraw) c.redraw(); });
    });
  }

  function start() {
    document.querySelectorAll(".course-explorer[data-kind]").forEach(function (root) {
      build(root).catch(function (err) {
        root.dataset.ready = "failed";
        console.warn("vae-course explorer " + root.dataset.explorer + ": " + err.message);
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
