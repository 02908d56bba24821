/* The /map page's large-plan mode: the plan drawn from its vector tiles (/tiles/{plan}/{z}/{x}/{y}.mvt)
   with MapLibre GL JS (vendored, served from this origin), so a province plan opens without loading whole
   layers. window.GPT: start(), props(), answer(). */
(function () {
  "use strict";
  var ML = "/static/maplibre/";
  var ctx = {map: null, key: "", t0: 0};

  var loading = null;
  function loadMapLibre() {
    if (window.maplibregl) return Promise.resolve();
    if (loading) return loading;
    loading = new Promise(function (resolve, reject) {
      var css = document.createElement("link");
      css.rel = "stylesheet"; css.href = ML + "maplibre-gl.css";
      document.head.appendChild(css);
      var s = document.createElement("script");
      s.src = ML + "maplibre-gl.js";
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("the map library could not be loaded from " + ML)); };
      document.head.appendChild(s);
    });
    return loading;
  }

  function style(job, span) {
    var url = location.origin + "/tiles/" + encodeURIComponent(job.id) + "/{z}/{x}/{y}.mvt";
    var dev = ["case", ["has", "deviation"],
               ["interpolate", ["linear"], ["get", "deviation"], -span, "rgb(49,104,180)", 0, "rgb(247,247,247)",
                span, "rgb(200,40,40)"], "#bbbbbb"];
    return {version: 8, sources: {plan: {type: "vector", tiles: [url], minzoom: 0, maxzoom: 22}},
      layers: [
        {id: "bg", type: "background", paint: {"background-color": "#eef1f4"}},
        {id: "service_areas", type: "fill", source: "plan", "source-layer": "service_areas",
         paint: {"fill-color": "#2a9d8f", "fill-opacity": 0.12}},
        {id: "grids", type: "fill", source: "plan", "source-layer": "grids",
         paint: {"fill-color": dev, "fill-opacity": 0.75}},
        {id: "grid-lines", type: "line", source: "plan", "source-layer": "grids",
         paint: {"line-color": "#444", "line-width": 0.6}},
        {id: "micro_grids", type: "line", source: "plan", "source-layer": "micro_grids",
         paint: {"line-color": "#666", "line-width": 0.4, "line-dasharray": [2, 2]}},
        {id: "units", type: "line", source: "plan", "source-layer": "units",
         paint: {"line-color": "#1d3557", "line-width": 1.4}},
        {id: "grid-hl", type: "line", source: "plan", "source-layer": "grids", filter: ["==", ["get", "grid_code"], ""],
         paint: {"line-color": "#000", "line-width": 3}},
        {id: "stations", type: "circle", source: "plan", "source-layer": "stations",
         paint: {"circle-radius": 5, "circle-color": ["case", ["to-boolean", ["get", "existing"]], "#6a040f", "#e63946"],
                 "circle-stroke-color": "#fff", "circle-stroke-width": 2}}]};
  }

  function drawnGrids() {
    return ctx.map ? ctx.map.querySourceFeatures("plan", {sourceLayer: "grids"}).length : 0;
  }

  // draw the plan's tiles; resolves to null (the caller's "drawn from tiles") once the map exists
  function start(job, state, api, key, setStatus, lookupAt) {
    ctx.key = key; ctx.t0 = performance.now();
    setStatus("loading the map of plan " + job.id + " (vector tiles)…");
    return Promise.all([loadMapLibre(), api("/tiles/" + encodeURIComponent(job.id) + "/tiles.json")]).then(function (r) {
      var tj = r[1], el = document.getElementById("map");
      el.innerHTML = "";
      window.gridplan.timing = {libraryAndTileJsonMs: performance.now() - ctx.t0};
      var m = ctx.map = new maplibregl.Map({
        container: el, style: style(job, GP.span(state.tolerance)), attributionControl: false, fadeDuration: 0,
        bounds: tj.bounds || [73, 18, 135, 54], fitBoundsOptions: {padding: 10}, maxZoom: 20,
        transformRequest: function (url) {
          return url.indexOf(location.origin + "/tiles/") === 0 ? {url: url, headers: {"X-API-Key": ctx.key}} : {url: url};
        }});
      m.addControl(new maplibregl.ScaleControl({unit: "metric"}));
      window.gridplan.map = m;
      m.on("click", function (ev) { lookupAt(ev.lngLat.wrap().lng, ev.lngLat.wrap().lat); });
      m.on("error", function (ev) { setStatus((ev.error && ev.error.message) || "a tile failed to load", true); });
      function ready() {       // the first frame that shows grids from tiles
        var n = drawnGrids();
        if (!n) return;
        m.off("render", ready);
        window.gridplan.readyAt = performance.now();      // since navigation start
        window.gridplan.firstTilesMs = window.gridplan.readyAt - ctx.t0;
        document.body.dataset.tilesDrawn = String(n);
        document.body.dataset.ready = "1";
        setStatus("plan " + job.id + ": " + ((job.summary || {}).grids || "?") + " grids, drawn from vector tiles" +
                  " — click anywhere to look up its grid");
      }
      m.on("render", ready);
      return null;
    });
  }

  function props(code) {
    var f = ctx.map ? ctx.map.querySourceFeatures("plan", {sourceLayer: "grids", filter: ["==", ["get", "grid_code"], code]}) : [];
    return f.length ? f[0].properties : {};
  }

  var popup = null;
  function answer(lon, lat, code, html) {
    var m = ctx.map;
    if (!m) return;
    m.setFilter("grid-hl", ["==", ["get", "grid_code"], code || ""]);
    if (popup) popup.remove();
    popup = html ? new maplibregl.Popup({maxWidth: "320px"}).setLngLat([lon, lat]).setHTML(html).addTo(m) : null;
  }

  window.GPT = {start: start, props: props, answer: answer, drawnGrids: drawnGrids, preload: loadMapLibre};
})();
