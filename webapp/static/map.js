// The RoadMesh map: our own vector tiles (roads, buildings, coverage, features, frames),
// filters kept in the URL (the view in the hash), and a feature's details with its evidence.
// Exposes window.roadmeshMap and window.roadmeshReady for the browser tests.

const COLORS = {
  stop: "#e03131", yield: "#f08c00", no_entry: "#c2255c", pedestrian_crossing: "#1971c2",
  traffic_light: "#2f9e44", fire_hydrant: "#d9480f",
};
const SHORT = {
  stop: "STOP", yield: "YLD", no_entry: "NO", pedestrian_crossing: "PED",
  traffic_light: "TL", fire_hydrant: "H",
};

function classColor(cls) {
  if (COLORS[cls]) return COLORS[cls];
  if (cls.startsWith("speed_limit")) return "#5f3dc4";
  let h = 0;
  for (const c of cls) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h}, 60%, 45%)`;
}

function classText(cls) {
  const m = cls.match(/_(\d+)$/);
  if (m) return m[1];
  return SHORT[cls] || cls.slice(0, 2).toUpperCase();
}

// An icon per class and state: a disc in the class colour with its short name; candidates
// get a dashed ring, rejected and removed ones are faded.
export function drawIcon(cls, state, size = 28) {
  const ratio = 2;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const r = size / 2 - 2;
  ctx.globalAlpha = state === "rejected" || state === "removed" ? 0.35 : 1;
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, r, 0, Math.PI * 2);
  ctx.fillStyle = cls.startsWith("speed_limit") ? "#fff" : classColor(cls);
  ctx.fill();
  ctx.lineWidth = cls.startsWith("speed_limit") ? 3 : 2;
  ctx.strokeStyle = cls.startsWith("speed_limit") ? "#e03131" : "#fff";
  if (state === "candidate") ctx.setLineDash([3, 2]);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = cls.startsWith("speed_limit") ? "#111" : "#fff";
  const text = classText(cls);
  ctx.font = `bold ${text.length > 2 ? 8 : 11}px sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, size / 2, size / 2 + 0.5);
  if (state === "confirmed") {
    ctx.beginPath();
    ctx.arc(size - 6, 6, 4, 0, Math.PI * 2);
    ctx.fillStyle = "#2b8a3e";
    ctx.fill();
  }
  return { width: size * ratio, height: size * ratio, data: ctx.getImageData(0, 0, size * ratio, size * ratio).data };
}

function tiles(layer) {
  return { type: "vector", tiles: [`${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt`], minzoom: 0, maxzoom: 16 };
}

const FRESH_COLOR = ["interpolate", ["linear"], ["get", "freshness_days"], 0, "#2b8a3e", 30, "#fab005", 90, "#e8590c", 180, "#868e96"];

export function overlayLayers(showFrames) {
  const layers = [
    { id: "coverage", type: "fill", source: "coverage", "source-layer": "coverage",
      paint: { "fill-color": FRESH_COLOR, "fill-opacity": 0.35, "fill-outline-color": "rgba(0,0,0,0.15)" } },
    { id: "ellipse", type: "fill", source: "ellipse", paint: { "fill-color": "#ff2d55", "fill-opacity": 0.18 } },
    { id: "ellipse-line", type: "line", source: "ellipse", paint: { "line-color": "#ff2d55", "line-width": 1.5 } },
  ];
  if (showFrames) {
    layers.push(
      { id: "drives", type: "line", source: "drives", paint: { "line-color": "#1c7ed6", "line-width": 3, "line-opacity": 0.7 } },
      { id: "frames", type: "circle", source: "frames", "source-layer": "frames", minzoom: 12,
        paint: { "circle-radius": 3.5, "circle-color": ["match", ["get", "state"], "flagged", "#d9480f", "#1c7ed6"],
                 "circle-stroke-color": "#fff", "circle-stroke-width": 1 } },
    );
  }
  layers.push({
    id: "features", type: "symbol", source: "features", "source-layer": "features",
    layout: { "icon-image": ["concat", ["get", "class"], ":", ["get", "state"]], "icon-size": 0.5,
              "icon-allow-overlap": true, "icon-ignore-placement": true },
  });
  return layers;
}

function baseStyle() {
  return {
    version: 8,
    sources: {
      roads: { ...tiles("roads"), attribution: "© OpenStreetMap contributors" },
      buildings: tiles("buildings"),
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#eef0f2" } },
      { id: "buildings", type: "fill", source: "buildings", "source-layer": "buildings", minzoom: 13,
        paint: { "fill-color": "#d9d4cc", "fill-outline-color": "#bfb8ad" } },
      { id: "roads-casing", type: "line", source: "roads", "source-layer": "roads",
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": "#b8bfc6", "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 11, 1.5, 18, 22] } },
      { id: "roads", type: "line", source: "roads", "source-layer": "roads",
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": ["match", ["get", "highway"], ["primary", "trunk"], "#ffe8a3", "#ffffff"],
                 "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 11, 0.8, 18, 18] } },
    ],
  };
}

function readFilters() {
  const q = new URLSearchParams(location.search);
  const list = (k) => (q.get(k) ? q.get(k).split(",").filter(Boolean) : []);
  return { classes: list("class"), states: list("state"), fresh: q.get("fresh") || "" };
}

function writeFilters(f) {
  const q = new URLSearchParams();
  if (f.classes.length) q.set("class", f.classes.join(","));
  if (f.states.length) q.set("state", f.states.join(","));
  if (f.fresh) q.set("fresh", f.fresh);
  const search = q.toString();
  history.replaceState(null, "", `${location.pathname}${search ? "?" + search : ""}${location.hash}`);
}

function featureFilter(f) {
  const all = ["all"];
  if (f.classes.length) all.push(["in", ["get", "class"], ["literal", f.classes]]);
  if (f.states.length) all.push(["in", ["get", "state"], ["literal", f.states]]);
  return all;
}

// An ellipse (metres) around lon/lat as a GeoJSON polygon.
export function ellipsePolygon(lon, lat, e) {
  const k = 111320;
  const coords = [];
  const rot = ((e.bearing_deg || 0) * Math.PI) / 180;
  for (let i = 0; i <= 48; i++) {
    const t = (i / 48) * Math.PI * 2;
    const a = e.semi_major_m * Math.cos(t);
    const b = e.semi_minor_m * Math.sin(t);
    const east = a * Math.sin(rot) + b * Math.cos(rot);
    const north = a * Math.cos(rot) - b * Math.sin(rot);
    coords.push([lon + east / (k * Math.cos((lat * Math.PI) / 180)), lat + north / k]);
  }
  return { type: "Feature", geometry: { type: "Polygon", coordinates: [coords] }, properties: {} };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function evidence(obs) {
  const wrap = el("div", { class: "evidence" });
  const img = el("img", { src: obs.image_url, alt: `evidence for detection ${obs.detection}` });
  const [w, h] = obs.image_size;
  const [x0, y0, x1, y1] = obs.box;
  const box = el("div", { class: "box", style: {
    left: `${(100 * x0) / w}%`, top: `${(100 * y0) / h}%`, width: `${(100 * (x1 - x0)) / w}%`, height: `${(100 * (y1 - y0)) / h}%`,
  } });
  wrap.append(img, box);
  const at = (obs.captured_at || obs.captured_on).slice(0, 16).replace("T", " ");
  const caption = el("div", { class: "muted" }, `${obs.class.replaceAll("_", " ")} · ${(obs.confidence * 100).toFixed(0)} % · ${at}`);
  return el("div", {}, wrap, caption);
}

async function showFeature(map, id) {
  const response = await fetch(`/api/v1/features/${id}`);
  const body = await response.json();
  const p = body.properties;
  const [lon, lat] = body.geometry.coordinates;
  map.getSource("ellipse").setData(ellipsePolygon(lon, lat, p.ellipse));
  if (!map.getBounds().contains([lon, lat])) map.jumpTo({ center: [lon, lat] });
  const when = (s) => (s ? s.slice(0, 16).replace("T", " ") : "—");
  const rows = [
    ["class", p.class], ["value", p.value ?? "—"], ["state", p.state],
    ["position", `${lat.toFixed(6)}, ${lon.toFixed(6)}`],
    ["uncertainty", `${p.ellipse.semi_major_m.toFixed(1)} × ${p.ellipse.semi_minor_m.toFixed(1)} m`],
    ["facing", p.facing_deg == null ? "—" : `${Math.round(p.facing_deg)}°`],
    ["first seen", when(p.first_seen_at)], ["last seen", when(p.last_seen_at)],
    ["passes", p.passes], ["devices", p.devices],
  ];
  const dl = el("dl");
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  const details = document.getElementById("details");
  details.replaceChildren(el("h1", {}, `Feature ${body.id}`), dl,
    el("p", { class: "muted" }, `${p.observations.length} observations`),
    ...p.observations.slice(0, 6).map(evidence));
  window.roadmeshFeatureShown = body.id;
}

export function startMap(maplibregl, config) {
  const filters = readFilters();
  const styleIsOurs = !config.styleUrl;
  const map = new maplibregl.Map({
    container: "map", style: styleIsOurs ? baseStyle() : config.styleUrl,
    center: [24.944, 60.1716], zoom: 14, hash: "map", attributionControl: { compact: false },
  });
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-right");
  window.roadmeshMap = map;

  // filter controls
  const classBox = document.getElementById("class-filter");
  for (const cls of config.classes) {
    const input = el("input", { type: "checkbox", name: "class", value: cls });
    input.checked = filters.classes.includes(cls);
    const icon = drawIcon(cls, "confirmed", 16);
    const canvas = document.createElement("canvas");
    canvas.width = icon.width; canvas.height = icon.height;
    canvas.getContext("2d").putImageData(new ImageData(icon.data, icon.width, icon.height), 0, 0);
    classBox.append(el("label", {}, input, el("img", { src: canvas.toDataURL(), alt: "" }), cls.replaceAll("_", " ")));
  }
  const stateBox = document.getElementById("state-filter");
  for (const st of config.states) {
    const input = el("input", { type: "checkbox", name: "state", value: st });
    input.checked = filters.states.includes(st);
    stateBox.append(el("label", {}, input, st));
  }
  document.getElementById("fresh").value = filters.fresh;

  function apply() {
    const form = document.getElementById("filters");
    filters.classes = [...form.querySelectorAll("input[name=class]:checked")].map((i) => i.value);
    filters.states = [...form.querySelectorAll("input[name=state]:checked")].map((i) => i.value);
    filters.fresh = document.getElementById("fresh").value;
    writeFilters(filters);
    if (!map.getLayer("features")) return;
    map.setFilter("features", featureFilter(filters));
    map.setFilter("coverage", filters.fresh ? ["<=", ["get", "freshness_days"], Number(filters.fresh)] : null);
    countVisible();
  }
  document.getElementById("filters").addEventListener("change", apply);

  function countVisible() {
    const n = map.queryRenderedFeatures({ layers: ["features"] }).length;
    const c = map.queryRenderedFeatures({ layers: ["coverage"] }).length;
    document.getElementById("visible").textContent = `${n} features and ${c} covered cells in view`;
  }

  map.on("styleimagemissing", (e) => {
    const [cls, st] = e.id.split(":");
    if (cls && st && !map.hasImage(e.id)) map.addImage(e.id, drawIcon(cls, st), { pixelRatio: 2 });
  });

  map.on("load", async () => {
    for (const cls of config.classes) {
      for (const st of config.states) map.addImage(`${cls}:${st}`, drawIcon(cls, st), { pixelRatio: 2 });
    }
    map.addSource("coverage", tiles("coverage"));
    map.addSource("features", tiles("features"));
    map.addSource("ellipse", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    if (config.framesVisible) {
      map.addSource("frames", tiles("frames"));
      map.addSource("drives", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    }
    for (const layer of overlayLayers(config.framesVisible)) map.addLayer(layer);
    if (config.extent && !location.hash.includes("map=")) {
      const e = config.extent;
      map.fitBounds([[e[0], e[1]], [e[2], e[3]]], { padding: 60, maxZoom: 17, duration: 0 });
    }
    apply();
    if (config.framesVisible && config.extent) {
      const r = await fetch(`/api/v1/drives?bbox=${config.extent.join(",")}`);
      if (r.ok) map.getSource("drives").setData(await r.json());
    }
    map.once("idle", () => { countVisible(); window.roadmeshReady = true; });
  });
  map.on("idle", () => { if (map.getLayer("features")) countVisible(); });
  map.on("click", "features", (e) => showFeature(map, e.features[0].properties.id));
  map.on("mouseenter", "features", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "features", () => { map.getCanvas().style.cursor = ""; });
  window.roadmeshShowFeature = (id) => showFeature(map, id);
  return map;
}
