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
  }
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
