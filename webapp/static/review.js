// The review queue: one key per verdict (A accept, R reject, L relabel, M mark missed, S skip).
// window.roadmeshReview exposes the current task and the count of votes sent, for tests.
const state = { task: null, mode: "", votes: 0, drawn: null, settled: 0 };
window.roadmeshReview = state;

function csrf() {
  const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body), credentials: "same-origin",
  });
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

const $ = (id) => document.getElementById(id);

function flash(text) { $("flash").textContent = text; }

function placeBox(node, box, size) {
  const [w, h] = size;
  const [x0, y0, x1, y1] = box;
  Object.assign(node.style, {
    left: `${(100 * x0) / w}%`, top: `${(100 * y0) / h}%`,
    width: `${(100 * (x1 - x0)) / w}%`, height: `${(100 * (y1 - y0)) / h}%`, display: "block",
  });
}

function showCrop(d) {
  const [w, h] = d.image_size;
  const [x0, y0, x1, y1] = d.box;
  const side = Math.max(x1 - x0, y1 - y0) * 1.6;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const crop = $("crop");
  const px = crop.clientWidth || 300;
  const scale = px / side;
  crop.style.backgroundImage = `url("${d.image_url}")`;
  crop.style.backgroundSize = `${w * scale}px ${h * scale}px`;
  crop.style.backgroundPosition = `${-(cx - side / 2) * scale}px ${-(cy - side / 2) * scale}px`;
}

async function load() {
  setMode("");
  const r = await fetch("/review/next", { credentials: "same-origin" });
  const body = await r.json();
  state.task = body.task;
  $("remaining").textContent = body.remaining;
  if (!body.task) {
    $("detected-class").textContent = "Nothing left to review";
    $("confidence").textContent = "";
    $("frame-img").removeAttribute("src");
    $("frame-box").style.display = "none";
    $("crop").style.backgroundImage = "";
    window.roadmeshReviewEmpty = true;
    return;
  }
  const d = body.task.detection;
  $("detected-class").textContent = (d ? d.class : body.task.feature.class).replaceAll("_", " ");
  $("confidence").textContent = d ? `${Math.round(d.confidence * 100)} % sure` : "";
  if (d) {
    $("frame-img").src = d.image_url;
    placeBox($("frame-box"), d.box, d.image_size);
    $("frame-caption").textContent = `frame ${d.frame} · feature ${body.task.feature.id}`;
    showCrop(d);
  }
}

function setMode(mode) {
  state.mode = mode;
  $("relabel-box").hidden = mode !== "relabel" && mode !== "missed";
  $("missed-box").hidden = mode !== "missed";
  if (mode !== "missed" && state.drawn) { state.drawn.node.remove(); state.drawn = null; }
}

async function vote(verdict, label = "") {
  if (!state.task) return;
  try {
    const r = await post(`/review/tasks/${state.task.id}/vote`, { verdict, label });
    state.votes += 1;
    if (r.settled) state.settled += 1;
    flash(r.settled ? `Settled: ${r.settled}` : `Sent: ${verdict}${label ? " " + label : ""}`);
  } catch (e) { flash(e.message); }
  await load();
}

async function sendMissed() {
  const d = state.task && state.task.detection;
  if (!d || !state.drawn || !state.drawn.box) { flash("draw a box first"); return; }
  try {
    await post(`/review/frames/${d.frame}/missed`, { label: $("relabel-class").value, box: state.drawn.box });
    flash("Missed object recorded");
  } catch (e) { flash(e.message); }
  setMode("");
}

// drawing a missed box on the frame
(function drawing() {
  const frame = $("frame");
  let start = null;
  const toImage = (ev) => {
    const img = $("frame-img");
    const rect = img.getBoundingClientRect();
    const [w, h] = state.task.detection.image_size;
    return [((ev.clientX - rect.left) / rect.width) * w, ((ev.clientY - rect.top) / rect.height) * h];
  };
  frame.addEventListener("mousedown", (ev) => {
    if (state.mode !== "missed" || !state.task || !state.task.detection) return;
    ev.preventDefault();
    start = toImage(ev);
    if (!state.drawn) { state.drawn = { node: document.createElement("div"), box: null }; state.drawn.node.className = "drawn"; frame.append(state.drawn.node); }
  });
  window.addEventListener("mousemove", (ev) => {
    if (!start) return;
    const p = toImage(ev);
    const box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])];
    const [w, h] = state.task.detection.image_size;
    box[0] = Math.max(0, box[0]); box[1] = Math.max(0, box[1]); box[2] = Math.min(w, box[2]); box[3] = Math.min(h, box[3]);
    state.drawn.box = box.map(Math.round);
    placeBox(state.drawn.node, state.drawn.box, [w, h]);
  });
  window.addEventListener("mouseup", () => { start = null; });
})();

$("accept").addEventListener("click", () => vote("accept"));
$("reject").addEventListener("click", () => vote("reject"));
$("relabel").addEventListener("click", () => setMode(state.mode === "relabel" ? "" : "relabel"));
$("missed").addEventListener("click", () => setMode(state.mode === "missed" ? "" : "missed"));
$("skip").addEventListener("click", () => load());

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const key = ev.key.toLowerCase();
  if (state.mode && /^[1-9]$/.test(key)) {
    const select = $("relabel-class");
    if (select.options[Number(key) - 1]) select.selectedIndex = Number(key) - 1;
    ev.preventDefault();
    return;
  }
  if (key === "enter" && state.mode === "relabel") { ev.preventDefault(); vote("relabel", $("relabel-class").value); return; }
  if (key === "enter" && state.mode === "missed") { ev.preventDefault(); sendMissed(); return; }
  if (key === "escape") { setMode(""); return; }
  const actions = { a: () => vote("accept"), r: () => vote("reject"), l: () => setMode("relabel"), m: () => setMode("missed"), s: () => load() };
  if (actions[key]) { ev.preventDefault(); actions[key](); }
});

load().then(() => { window.roadmeshReviewReady = true; });
