/* gridplan's shared map helpers, used by report.html and the service's /map page (both inline it).
   One copy of the escaping, number formatting and deviation colours: window.GP. */
(function () {
  "use strict";
  var BLUE = [49, 104, 180], WHITE = [247, 247, 247], RED = [200, 40, 40];
  function esc(s) {
    return String(s == null ? "—" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function mix(a, b, t) {
    return "rgb(" + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * t); }).join(",") + ")";
  }
  // blue: fewer households than the unit mean; red: more; grey: unknown. span: the deviation at full colour
  function devColour(d, span) {
    if (d == null || isNaN(d)) return "#bbbbbb";
    var t = Math.max(-1, Math.min(1, d / span));
    return t < 0 ? mix(WHITE, BLUE, -t) : mix(WHITE, RED, t);
  }
  function span(tolerance) { return Math.max(0.3, 3 * (tolerance || 0.1)); }
  function pct(v, signed) { return v == null ? "—" : (signed && v > 0 ? "+" : "") + (100 * v).toFixed(1) + "%"; }
  function num(v, d) { return v == null ? "—" : (d == null ? Number(v).toLocaleString() : Number(v).toFixed(d)); }
  function gridPopup(p) {
    return '<div class="gp-popup"><b class="code">' + esc(p.grid_code) + '</b><table>' +
      '<tr><th>unit</th><td>' + esc(p.village_code) + '</td></tr>' +
      '<tr><th>households</th><td>' + num(p.households) + '</td></tr>' +
      '<tr><th>population</th><td>' + num(p.population, 0) + '</td></tr>' +
      '<tr><th>workers</th><td>' + num(p.workers) + '</td></tr>' +
      '<tr><th>deviation</th><td>' + pct(p.deviation, true) + '</td></tr>' +
      '<tr><th>area</th><td>' + num(p.area_km2, 3) + ' km²</td></tr>' +
      '<tr><th>Polsby-Popper</th><td>' + num(p.polsby_popper, 3) + '</td></tr></table></div>';
  }
  function isExisting(p) { return p.existing === true || p.existing === "true" || p.existing === 1; }
  window.GP = {esc: esc, mix: mix, devColour: devColour, span: span, pct: pct, num: num, gridPopup: gridPopup,
               isExisting: isExisting};
})();
