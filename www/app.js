// ot3d's page: loads a shipped transport map, maps a chosen or drawn digit on WebGPU (or
// the CPU), draws input and output with three-d, and keeps the whole view in the URL hash.
import init, {
  DigitGallery, TransportModel, VoxelView, blendGrids, formatHash, parseHash,
  rasterizeStrokes, renderPng, voxFile,
} from './pkg/ot3d_wasm.js';

const $ = (id) => document.getElementById(id);
const PAD_MAX = 63; // stroke coordinates are 0..=63 (see wasm/src/drawing.rs)
const TIMING_RUNS = 5;

const app = {
  state: null, models: [], entry: null, model: null, gallery: null, partners: null,
  view: null, input: null, output: null, strokes: [], mapping: 0, partnerUrl: null,
};
// What the browser tests read.
window.ot3d = { status: 'loading', problems: [], error: null };

function setStatus(text) { $('status').textContent = text; }
function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
  window.ot3d.status = 'error';
  window.ot3d.error = text;
  setStatus('Stopped: see the message below.');
}
function clearError() { $('error').hidden = true; $('error').textContent = ''; }
function showNotice(lines) {
  window.ot3d.problems = lines;
  $('notice').hidden = lines.length === 0;
  $('notice').textContent = lines.length
    ? `This link's view had problems; defaults are shown instead:\n• ${lines.join('\n• ')}` : '';
}

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${what} (${url}): ${e.message}. Is the site served (cargo xtask demo)?`);
  }
  if (!response.ok) {
    throw new Error(`cannot fetch ${what} (${url}): HTTP ${response.status}. Rebuild the site with \`cargo xtask web\`.`);
  }
  return response;
}

// --- URL state -------------------------------------------------------------------------

function writeHash() {
  try {
    const hash = formatHash(JSON.stringify(app.state));
    if (location.hash !== hash) history.replaceState(null, '', hash);
    window.ot3d.hash = location.hash;
    $('link').value = location.href;
  } catch (e) {
    showError(`internal error: the view cannot be written as a link: ${e.message}`);
  }
}

function readHash() {
  const parsed = JSON.parse(parseHash(location.hash));
  return { state: parsed.state, problems: parsed.problems };
}

function syncControls() {
  const s = app.state;
  $('threshold').value = s.threshold;
  $('th-value').textContent = s.threshold.toFixed(2);
  $('t').value = s.t;
  $('t-value').textContent = s.t.toFixed(2);
  $('force-cpu').checked = s.cpu;
  for (const b of document.querySelectorAll('[data-color]')) {
    b.setAttribute('aria-pressed', String(b.dataset.color === s.color));
  }
  for (const b of $('gallery').querySelectorAll('button')) {
    b.setAttribute('aria-current', String(!s.strokes && Number(b.dataset.index) === s.digit));
  }
  $('out-label').textContent = s.t === 1 ? 'T(x)' : `(1−t)·x + t·T(x), t = ${s.t.toFixed(2)}`;
}

// --- model and gallery -----------------------------------------------------------------

async function loadIndex() {
  const index = await (await fetchOk('models/index.json', 'the model list')).json();
  if (!Array.isArray(index.models) || index.models.length === 0) {
    throw new Error('the site ships no model (models/index.json is empty); run `cargo xtask web` with weights in models/pretrained/');
  }
  app.models = index.models;
  const select = $('model');
  select.replaceChildren(...index.models.map((m) => new Option(`${m.source_digit} → ${m.target_digit} (${m.name})`, m.name)));
  $('model-choice').hidden = index.models.length < 2;
}

async function loadModel(problems) {
  let entry = app.models.find((m) => m.name === app.state.model);
  if (!entry) {
    if (app.state.model !== null) {
      problems.push(`m=${app.state.model} is not a model of this site (${app.models.map((m) => m.name).join(', ')})`);
    }
    entry = app.models[0];
    app.state.model = null;
  }
  setStatus(`Loading model ${entry.name}…`);
  const manifest = await (await fetchOk(entry.manifest, `the manifest of ${entry.name}`)).text();
  const weights = new Uint8Array(await (await fetchOk(entry.weights, `the weights of ${entry.name}`)).arrayBuffer());
  if (app.model) { app.model.free(); app.model = null; }
  app.model = await TransportModel.load(manifest, weights, app.state.cpu);
  if (app.entry?.digits !== entry.digits || !app.gallery) {
    const bytes = new Uint8Array(await (await fetchOk(entry.digits, 'the gallery of test digits')).arrayBuffer());
    if (app.gallery) app.gallery.free();
    app.gallery = new DigitGallery(bytes);
    buildGallery();
  }
  if (app.entry?.ot_partners !== entry.ot_partners || !app.partners) await loadPartners(entry);
  app.entry = entry;
  $('model').value = entry.name;
  const [src, dst] = [app.model.sourceDigit(), app.model.targetDigit()];
  $('pair').textContent = `${src} → ${dst}`;
  for (const e of document.querySelectorAll('.src-digit')) e.textContent = String(src);
  for (const e of document.querySelectorAll('.dst-digit')) e.textContent = String(dst);
  const info = JSON.parse(app.model.manifestJson());
  const metrics = Object.entries(info.metrics || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(', ');
  $('model-info').textContent = `Model ${entry.name}: ${info.source_digit} → ${info.target_digit}, ` +
    `${info.voxel.flavor.kind ?? info.voxel.flavor} digits, ${info.training_steps} training steps, ` +
    `${info.precision} weights (sha256 ${info.sha256.slice(0, 12)}…)` + (metrics ? `. Measured: ${metrics}.` : '.');
  app.timed = false;
}

// The discrete-OT baseline: entry i of the partner pack is the training digit exact OT pairs
// with gallery digit i (built by `cargo xtask web`).
async function loadPartners(entry) {
  if (app.partners) { app.partners.free(); app.partners = null; }
  if (!entry.ot_partners) return; // a site built before the baseline existed: say so below
  const bytes = new Uint8Array(await (await fetchOk(entry.ot_partners, 'the discrete-OT partners')).arrayBuffer());
  const partners = new DigitGallery(bytes);
  if (partners.len() !== app.gallery.len() || partners.digit() !== entry.target_digit) {
    const found = `${partners.len()} digits of class ${partners.digit()}`;
    partners.free();
    throw new Error(`${entry.ot_partners} holds ${found}, but the gallery has ${app.gallery.len()} digits ` +
      `mapped to ${entry.target_digit}s: the site is out of date. Rebuild it with \`cargo xtask web\`.`);
  }
  app.partners = partners;
}

const perVoxelCost = (a, b) => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum / a.length;
};

function showPartner() {
  const s = app.state;
  const image = $('partner');
  const caption = $('partner-caption');
  const [src, dst] = [app.model.sourceDigit(), app.model.targetDigit()];
  const flavor = JSON.parse(app.model.manifestJson()).voxel.flavor;
  window.ot3d.partner = null;
  image.hidden = true;
  let why = null;
  if (!app.partners) why = 'This site was built without the discrete-OT baseline; rebuild it with `cargo xtask web` to see it.';
  else if ((flavor.kind ?? flavor) !== 'plain') why = 'The discrete-OT baseline is computed for plain digits; this model maps other digits.';
  else if (s.strokes) why = `Discrete-OT baseline: exact OT pairs the gallery's test ${src}s with training ${dst}s, so a drawing has no partner. Pick a gallery digit to see it.`;
  if (why) { caption.textContent = why; return; }
  const index = app.partners.mnistIndex(s.digit);
  const grid = app.model.voxelize(app.partners.pixels(s.digit), s.color, 0n);
  if (app.partnerUrl) URL.revokeObjectURL(app.partnerUrl);
  app.partnerUrl = URL.createObjectURL(new Blob([renderPng(grid, 5)], { type: 'image/png' }));
  image.src = app.partnerUrl;
  image.alt = `training ${dst} #${index}, the discrete-OT partner of this ${src}`;
  image.hidden = false;
  const [partnerCost, mapCost] = [perVoxelCost(app.input, grid), perVoxelCost(app.input, app.output)];
  caption.textContent = `Discrete-OT baseline: exact optimal transport between the ${app.gallery.len()} test ${src}s ` +
    `of the gallery and the first ${app.partners.len()} training ${dst}s pairs this ${src} with training ${dst} #${index} ` +
    `(cost ‖x − y‖²/D = ${partnerCost.toFixed(4)}; T(x): ${mapCost.toFixed(4)}). ` +
    `T(x) is not a lookup: the network makes a ${dst} for any ${src}, drawings included.`;
  window.ot3d.partner = { mnistIndex: index, cost: partnerCost, mapCost };
}

function buildGallery() {
  const list = $('gallery');
  const items = [];
  for (let i = 0; i < app.gallery.len(); i++) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.index = String(i);
    button.setAttribute('role', 'listitem');
    button.setAttribute('aria-label', `test digit ${i} (MNIST test #${app.gallery.mnistIndex(i)})`);
    const canvas = document.createElement('canvas');
    canvas.width = 28; canvas.height = 28;
    const pixels = app.gallery.pixels(i);
    const image = canvas.getContext('2d').createImageData(28, 28);
    for (let p = 0; p < 784; p++) {
      image.data.set([pixels[p], pixels[p], pixels[p], 255], p * 4);
    }
    canvas.getContext('2d').putImageData(image, 0, 0);
    button.append(canvas);
    button.addEventListener('click', () => {
      app.state.strokes = null;
      app.state.digit = i;
      update({ remap: true });
    });
    items.push(button);
  }
  list.replaceChildren(...items);
  $('gallery-count').textContent = `(${items.length})`;
}

// --- mapping and drawing ---------------------------------------------------------------

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function computeDigit(problems) {
  const s = app.state;
  let pixels; let seed;
  if (s.strokes) {
    pixels = rasterizeStrokes(JSON.stringify(s.strokes));
    seed = 0n;
  } else {
    if (s.digit >= app.gallery.len()) {
      problems.push(`d=${s.digit}: the gallery has digits 0 to ${app.gallery.len() - 1}; showing digit 0`);
      s.digit = 0;
    }
    pixels = app.gallery.pixels(s.digit);
    seed = BigInt(app.gallery.mnistIndex(s.digit));
  }
  app.input = app.model.voxelize(pixels, s.color, seed);
  const job = ++app.mapping;
  const started = performance.now();
  const output = await app.model.map(app.input);
  const once = performance.now() - started;
  if (job !== app.mapping) return false; // a newer request replaced this one
  app.output = output;
  showPartner();
  const backend = app.model.backend();
  const why = app.model.fallbackReason();
  if (!app.timed) {
    const times = [];
    for (let i = 0; i < TIMING_RUNS; i++) {
      const t0 = performance.now();
      await app.model.map(app.input);
      times.push(performance.now() - t0);
    }
    app.timed = true;
    app.medianMs = median(times);
  }
  $('timing').textContent = `T(x) on ${backend}: ${app.medianMs.toFixed(1)} ms (median of ${TIMING_RUNS} after warm-up); ` +
    `this digit ${once.toFixed(1)} ms.` + (why && backend !== 'WebGPU' ? ` ${why}.` : '');
  window.ot3d.backend = backend;
  window.ot3d.medianMs = app.medianMs;
  return true;
}

function draw() {
  if (!app.view || !app.input || !app.output) return;
  const canvas = $('view');
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(2, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width; canvas.height = height;
  }
  const s = app.state;
  app.view.draw(width, height, s.yaw, s.pitch, s.distance);
}

let frameRequested = false;
function requestDraw() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; draw(); });
}

// Applies the state: remaps when the digit, color or model changed, then redraws.
async function update({ remap = false, reload = false, problems = [] } = {}) {
  clearError();
  try {
    if (reload) await loadModel(problems);
    if (reload || remap) {
      setStatus('Mapping…');
      if (!(await computeDigit(problems))) return;
    }
    app.view.setDigits(app.input, app.output, app.state.threshold, app.state.t);
    syncControls();
    writeHash();
    if (problems.length) showNotice(problems);
    const [left, right] = app.view.cubeCounts();
    setStatus(`Showing ${app.state.strokes ? 'your drawing' : `test digit ${app.state.digit}`} in ${app.state.color}: ` +
      `${left} input voxels, ${right} output voxels at threshold ${app.state.threshold.toFixed(2)}.`);
    window.ot3d.status = 'ready';
    window.ot3d.input = app.input;
    window.ot3d.output = app.output;
    window.ot3d.cubes = [left, right];
    window.ot3d.hash = location.hash;
    requestDraw();
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  }
}

// --- controls --------------------------------------------------------------------------

function bindControls() {
  $('threshold').addEventListener('input', (e) => { app.state.threshold = Number(e.target.value); update(); });
  $('t').addEventListener('input', (e) => { app.state.t = Number(e.target.value); update(); });
  for (const b of document.querySelectorAll('[data-color]')) {
    b.addEventListener('click', () => { app.state.color = b.dataset.color; update({ remap: true }); });
  }
  $('force-cpu').addEventListener('change', (e) => { app.state.cpu = e.target.checked; update({ reload: true }); });
  $('model').addEventListener('change', (e) => {
    app.state.model = e.target.value === app.models[0].name ? null : e.target.value;
    app.state.digit = 0; app.state.strokes = null;
    update({ reload: true });
  });
  $('copy-link').addEventListener('click', async () => {
    writeHash();
    $('link').hidden = false;
    $('link').select();
    try {
      await navigator.clipboard.writeText(location.href);
      setStatus('Link copied.');
    } catch {
      setStatus('Copy the link from the field below.');
    }
  });
  $('save-png').addEventListener('click', () => {
    draw();
    $('view').toBlob((blob) => download(blob, `ot3d-${fileStem()}.png`), 'image/png');
  });
  $('save-vox').addEventListener('click', () => {
    const bytes = voxFile(app.input, app.output, app.state.threshold);
    download(new Blob([bytes], { type: 'application/octet-stream' }), `ot3d-${fileStem()}.vox`);
  });
  bindCamera();
  bindPad();
  window.addEventListener('resize', requestDraw);
  window.addEventListener('hashchange', () => {
    if (location.hash === window.ot3d.hash) return;
    const { state, problems } = readHash();
    const reload = state.model !== app.state.model || state.cpu !== app.state.cpu;
    app.state = state;
    showNotice(problems);
    update({ remap: true, reload, problems });
  });
}

function fileStem() {
  const s = app.state;
  return `${app.entry.name}-${s.strokes ? 'drawn' : `d${s.digit}`}-${s.color}`;
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url; a.download = name;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const wrapYaw = (y) => ((((y + 180) % 360) + 360) % 360) - 180;

function moveCamera(dYaw, dPitch, zoom = 1) {
  const s = app.state;
  s.yaw = Math.round(wrapYaw(s.yaw + dYaw));
  s.pitch = Math.round(clamp(s.pitch + dPitch, -85, 85));
  s.distance = Math.round(clamp(s.distance * zoom, 15, 80) * 10) / 10;
  writeHash();
  requestDraw();
}

function bindCamera() {
  const canvas = $('view');
  let last = null;
  canvas.addEventListener('pointerdown', (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    moveCamera(-(e.clientX - last[0]) * 0.5, (e.clientY - last[1]) * 0.5);
    last = [e.clientX, e.clientY];
  });
  const end = () => { last = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  canvas.addEventListener('wheel', (e) => { e.preventDefault(); moveCamera(0, 0, e.deltaY > 0 ? 1.1 : 1 / 1.1); }, { passive: false });
  canvas.addEventListener('keydown', (e) => {
    const moves = { ArrowLeft: [-10, 0, 1], ArrowRight: [10, 0, 1], ArrowUp: [0, 10, 1], ArrowDown: [0, -10, 1], '+': [0, 0, 1 / 1.1], '=': [0, 0, 1 / 1.1], '-': [0, 0, 1.1] };
    const move = moves[e.key];
    if (move) { e.preventDefault(); moveCamera(...move); }
  });
}

// --- drawing pad -----------------------------------------------------------------------

function bindPad() {
  const pad = $('pad');
  const ctx = pad.getContext('2d');
  let stroke = null;
  const point = (e) => {
    const r = pad.getBoundingClientRect();
    return [
      clamp(Math.round(((e.clientX - r.left) / r.width) * PAD_MAX), 0, PAD_MAX),
      clamp(Math.round(((e.clientY - r.top) / r.height) * PAD_MAX), 0, PAD_MAX),
    ];
  };
  const paint = () => {
    ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = '#fff'; ctx.lineWidth = pad.width / 14; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    const scale = pad.width / PAD_MAX;
    for (const s of app.strokes) {
      ctx.beginPath();
      s.forEach(([x, y], i) => (i ? ctx.lineTo(x * scale, y * scale) : ctx.moveTo(x * scale, y * scale)));
      if (s.length === 1) ctx.lineTo(s[0][0] * scale + 0.1, s[0][1] * scale);
      ctx.stroke();
    }
  };
  app.paintPad = paint;
  pad.addEventListener('pointerdown', (e) => {
    if (app.strokes.length >= 64) { setStatus('At most 64 strokes: clear the pad to draw again.'); return; }
    stroke = [point(e)];
    app.strokes.push(stroke);
    pad.setPointerCapture(e.pointerId);
    paint();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!stroke) return;
    const p = point(e);
    const prev = stroke[stroke.length - 1];
    const total = app.strokes.reduce((n, s) => n + s.length, 0);
    if ((p[0] !== prev[0] || p[1] !== prev[1]) && total < 2048) { stroke.push(p); paint(); }
  });
  const end = () => {
    if (!stroke) return;
    stroke = null;
    useDrawing();
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  $('clear-pad').addEventListener('click', () => { app.strokes = []; paint(); });
  $('use-pad').addEventListener('click', useDrawing);
  paint();
}

function useDrawing() {
  if (app.strokes.length === 0) { setStatus('Draw a digit on the pad first.'); return; }
  app.state.strokes = app.strokes.map((s) => s.map(([x, y]) => [x, y]));
  update({ remap: true });
}

// --- start -----------------------------------------------------------------------------

async function main() {
  try {
    await init();
  } catch (e) {
    showError(`cannot start the WebAssembly module: ${e.message}. Rebuild the site with \`cargo xtask web\`.`);
    return;
  }
  const { state, problems } = readHash();
  app.state = state;
  if (state.strokes) app.strokes = state.strokes.map((s) => s.map(([x, y]) => [x, y]));
  try {
    app.view = new VoxelView($('view'));
  } catch (e) {
    showError(`cannot draw in 3D here: ${e.message}`);
    return;
  }
  try {
    await loadIndex();
  } catch (e) {
    showError(e.message);
    return;
  }
  bindControls();
  if (app.paintPad) app.paintPad();
  showNotice(problems);
  await update({ reload: true, problems });
}

main();
