/* report.html's large-plan map: the embedded layers drawn by MapLibre GL JS (inlined; it cuts the GeoJSON
   into vector tiles in its worker), so a province plan opens and pans smoothly offline. window.GPR.draw(D). */
(function () {
  "use strict";
  function bbox(geom) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    (function walk(c) {
      if (typeof c[0] === "number") { b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
                                      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]); return; }
      c.forEach(walk);
    })(geom.coordinates);
    return b;
  }
  function extent(fcs) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    fcs.forEach(function (fc) { (fc && fc.features || []).forEach(function (f) {
      if (!f.geometry) return;
      var g = bbox(f.geometry);
      b = [Math.min(b[0], g[0]), Math.min(b[1], g[1]), Math.max(b[2], g[2]), Math.max(b[3], g[3])];
    }); });
    return isFinite(b[0]) ? b : null;
  }
  function draw(D, span, legendHtml) {
    var empty = {type: "FeatureCollection", features: []};
    var dev = ["case", ["has", "deviation"], ["interpolate", ["linear"], ["get", "deviation"], -span, GP.devColour(-span, span),
               0, GP.devColour(0, span), span, GP.devColour(span, span)], "#bbbbbb"];
    var b = extent([D.grids, D.units, D.stations]) || [73, 18, 135, 54];
    var map = new maplibregl.Map({container: "map", attributionControl: false, fadeDuration: 0,
      bounds: b, fitBoundsOptions: {padding: 10}, maxZoom: 19,
      style: {version: 8, sources: {
          grids: {type: "geojson", data: D.grids || empty}, units: {type: "geojson", data: D.units || empty},
          service_areas: {type: "geojson", data: D.service_areas || empty},
          stations: {type: "geojson", data: D.stations || empty}},
        layers: [
          {id: "bg", type: "background", paint: {"background-color": "#eef1f4"}},
          {id: "service_areas", type: "fill", source: "service_areas", paint: {"fill-color": "#2a9d8f", "fill-opacity": 0.08}},
          {id: "grids", type: "fill", source: "grids", paint: {"fill-color": dev, "fill-opacity": 0.8}},
          {id: "grid-lines", type: "line", source: "grids", paint: {"line-color": "#444", "line-width": 0.6}},
          {id: "units", type: "line", source: "units",
           paint: {"line-color": "#1d3557", "line-width": 1.6, "line-dasharray": [3, 2]}},
          {id: "grid-hl", type: "line", source: "grids", filter: ["==", ["get", "grid_code"], ""],
           paint: {"line-color": "#000", "line-width": 2.5}},
          {id: "stations", type: "circle", source: "stations",
           paint: {"circle-radius": 6, "circle-stroke-color": "#fff", "circle-stroke-width": 2,
                   "circle-color": ["case", ["to-boolean", ["get", "existing"]], "#6a040f", "#e63946"]}}]}});
    map.addControl(new maplibregl.ScaleControl({unit: "metric"}));
    var legend = document.createElement("div");
    legend.className = "legend gp-ml-legend"; legend.innerHTML = legendHtml;
    document.getElementById("map").appendChild(legend);
    function popup(ll, html) { new maplibregl.Popup({maxWidth: "320px"}).setLngLat(ll).setHTML(html).addTo(map); }
    map.on("click", function (ev) {
      var hit = map.queryRenderedFeatures(ev.point, {layers: ["stations", "grids"]});
      if (!hit.length) return;
      var p = hit[0].properties;
      if (hit[0].layer.id === "stations") {
        popup(ev.lngLat, '<div class="gp-popup"><b>station ' + GP.esc(p.station_id) + "</b><br>" + GP.esc(p.name) +
              "<br>" + (GP.isExisting(p) ? "existing" : "proposed") + " · unit " + GP.esc(p.village_code) + "</div>");
      } else {
        map.setFilter("grid-hl", ["==", ["get", "grid_code"], p.grid_code]);
        popup(ev.lngLat, GP.gridPopup(p));
      }
    });
    (D.labels || []).forEach(function (l) {
      var el = document.createElement("div");
      el.className = "gp-label"; el.textContent = l[2];
      new maplibregl.Marker({element: el}).setLngLat([l[1], l[0]]).addTo(map);
    });
    var byCode = {};
    ((D.grids || empty).features || []).forEach(function (f) { byCode[f.properties.grid_code] = f; });
    var finder = document.createElement("div");
    finder.className = "legend gp-find gp-ml-find";
    finder.innerHTML = '<input type="search" placeholder="grid code…" size="17" aria-label="find a grid by code">';
    document.getElementById("map").appendChild(finder);
    var input = finder.querySelector("input");
    input.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter") return;
      var q = input.value.trim(), hit = byCode[q];
      if (!hit && q) {
        var codes = Object.keys(byCode).filter(function (c) { return c.indexOf(q) === 0; }).sort();
        if (codes.length) hit = byCode[codes[0]];
      }
      input.style.background = hit ? "" : "#fde2e2";
      if (!hit) return;
      var g = bbox(hit.geometry);
      map.fitBounds([[g[0], g[1]], [g[2], g[3]]], {maxZoom: 16, padding: 20, animate: false});
      map.setFilter("grid-hl", ["==", ["get", "grid_code"], hit.properties.grid_code]);
      popup([(g[0] + g[2]) / 2, (g[1] + g[3]) / 2], GP.gridPopup(hit.properties));
    });
    map.on("render", function ready() {
      if (!map.querySourceFeatures("grids").length) return;
      map.off("render", ready);
      document.body.dataset.ready = "1";
    });
    return map;
  }
  window.GPR = {draw: draw};
})();
