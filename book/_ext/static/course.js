// vae-course: shrink display equations that are wider than the text column
// (down to 75 % of their size) so they read without sideways scrolling on a
// laptop screen; anything still wider scrolls (see course.css).
(function () {
  function fit() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (el) {
      if (el.dataset.baseSize === undefined) {
        el.dataset.baseSize = parseFloat(el.style.fontSize) || 100;  // MathJax's own scaling, in %
      }
      var base = parseFloat(el.dataset.baseSize);
      el.style.fontSize = base + "%";
      var avail = el.clientWidth, need = el.scrollWidth;
      if (avail > 0 && need > avail + 1) {
        el.style.fontSize = (base * Math.max(0.75, avail / need)).toFixed(1) + "%";
      }
    });
    markScrollers();
  }
  // Boxes that scroll sideways get a shadow on the hidden side (course.css, .course-scrolls).
  // An inline formula wider than its line (on a phone) becomes a box that scrolls.
  function markScrollers() {
    document.querySelectorAll("mjx-container:not([display])").forEach(function (el) {
      el.classList.remove("course-inline-wide");
      var block = el.parentElement;
      while (block && getComputedStyle(block).display.indexOf("inline") === 0) block = block.parentElement;
      if (block && el.getBoundingClientRect().width > block.clientWidth + 1) el.classList.add("course-inline-wide");
    });
    document.querySelectorAll('mjx-container[display="true"], mjx-container.course-inline-wide, ' +
                              '.pst-scrollable-table-container').forEach(function (el) {
      el.classList.toggle("course-scrolls", el.scrollWidth > el.clientWidth + 1);
    });
  }
  document.addEventListener("DOMContentLoaded", markScrollers);
  window.addEventListener("load", function () {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(fit);
    }
  });
  var timer;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(fit, 150);
  });
})();

// Saved ipywidgets views are drawn by the widget manager, whose LaTeX support
// still calls MathJax 2's MathJax.Hub.Queue; the book loads MathJax 3. Give it a
// small MathJax 2-style entry point that typesets with MathJax 3 instead.
document.addEventListener("DOMContentLoaded", function () {
  if (window.MathJax && !window.MathJax.Hub) {
    window.MathJax.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset" && window.MathJax.typesetPromise) {
            window.MathJax.typesetPromise(job[2] ? [job[2]] : undefined).catch(function () {});
          }
        });
      },
    };
  }
});

// Images inside saved widget views (drawn after the page loads) get alt text too.
(function () {
  var ALT = "Saved view of an interactive widget (run the notebook to use it; the static figure beside it shows what it does)";
  function label(root) {
    (root.querySelectorAll ? root.querySelectorAll(".jupyter-widgets img:not([alt]), img.jupyter-widgets:not([alt])") : [])
      .forEach(function (img) { img.setAttribute("alt", ALT); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    label(document);
    new MutationObserver(function () { label(document); })
      .observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["src"] });
  });
})();

// Long inline code (vae_course.losses.aggregate_posterior_log_density) may break
// after a dot, an underscore, a slash or an opening bracket, so it wraps at a
// sensible place on a phone instead of mid-word (course.css lets it wrap at all).
document.addEventListener("DOMContentLoaded", function () {
  var BREAK_AFTER = /([._\/(,=])(?=[^\s])/g;
  document.querySelectorAll(".bd-article code.literal span.pre").forEach(function (span) {
    var text = span.textContent;
    if (text.length < 20 || span.children.length || !BREAK_AFTER.test(text)) return;
    BREAK_AFTER.lastIndex = 0;
    span.innerHTML = "";
    text.split(BREAK_AFTER).forEach(function (part, i) {
      span.appendChild(document.createTextNode(part));
      if (i % 2 === 1) span.appendChild(document.createElement("wbr"));
    });
  });
});
