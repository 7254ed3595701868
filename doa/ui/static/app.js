// doa ui: polls the local JSON endpoints and draws the page; no library, nothing loaded from
// elsewhere. Every value from the broker is put in the page as text (never as HTML).
'use strict';

const POLL_MS = 3000;
const SVG = 'http://www.w3.org/2000/svg';
const state = { stream: null, seenEvents: null, catalog: null };
// ?all=1: every topology on the broker, not only those given to `doa ui`
const ALL = new URLSearchParams(location.search).get('all');
const SCOPE = ALL && ALL !== '0' ? 'all=1' : '';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: 'no-store' });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function when(ms) {
  return ms == null || ms < 0 ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 23);
}

function fmt(n) {
  return n == null ? '-' : Number(n).toLocaleString('en');
}

function short(text, width) {
  return text.length <= width ? text : text.slice(0, width - 1) + '…';
}

function setStatus(text, ok) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = 'status ' + (ok ? 'ok' : 'error');
}

// -- catalog ----------------------------------------------------------------------------------
async function refreshCatalog() {
  try {
    const data = await getJSON('/api/catalog' + (SCOPE ? '?' + SCOPE : ''));
    state.catalog = data.catalog;
    render(data);
    setStatus('live · collected ' + when(data.catalog.collected_at), true);
  } catch (e) {
    setStatus('catalog: ' + e.message, false);
  }
  setTimeout(refreshCatalog, POLL_MS);
}

function render(data) {
  const c = data.catalog;
  document.getElementById('broker').textContent = 'broker ' + c.broker +
    (data.topologies.length ? ' · topologies ' + data.topologies.join(', ') : '');
  renderScope(data);
  renderStreams(c);
  renderNodes(c);
  drawGraph(data.graph);
  renderSelect(c);
  document.getElementById('hidden').textContent =
    c.hidden && c.hidden.length ? 'internal topics not shown: ' + c.hidden.join(', ') : '';
  const warnings = document.getElementById('warnings');
  warnings.replaceChildren(...(c.warnings || []).map((w) => el('li', {}, 'note: ' + w)));
}

// One line on the other topologies of the broker, with a link to show them (or to hide them).
function renderScope(data) {
  const line = document.getElementById('scope');
  const scope = data.scope || { all: true, others: [] };
  if (!data.topologies.length || !scope.others.length) { line.replaceChildren(); return; }
  const n = scope.others.length;
  const names = n + ' other topolog' + (n === 1 ? 'y' : 'ies') + ' (' + scope.others.join(', ') + ')';
  if (scope.all) {
    line.replaceChildren('showing every topology on this broker, with ' + names + ' · ',
      el('a', { id: 'scope-link', href: location.pathname }, 'show ' + data.topologies.join(', ') + ' only'));
  } else {
    line.replaceChildren('this broker also holds ' + names + ', not shown · ',
      el('a', { id: 'scope-link', href: location.pathname + '?all=1' }, 'show all'));
  }
}

function streamLink(name) {
  const a = el('a', { class: 'stream-link', href: '#stream=' + encodeURIComponent(name) }, name);
  a.addEventListener('click', (e) => { e.preventDefault(); selectStream(name); });
  return a;
}

function lines(items) {
  const td = el('td');
  items.forEach((item, i) => { if (i) td.append(el('br')); td.append(item); });
  if (!items.length) td.append('-');
  return td;
}

function renderStreams(c) {
  const rows = c.streams.map((s) => {
    const schema = s.schema ? s.schema.name + (s.schema.version ? ' v' + s.schema.version : '') +
      ' (' + s.schema.fields.length + ' fields)' : 'no registered schema';
    const writers = s.writers.map((w) => el('span', { class: w.alive ? 'alive' : 'dead' },
      w.node + (w.alive ? ' ●' : ' ○')));
    const publishers = s.publishers.map((p) => el('span', {}, p.name + ' (publisher)'));
    const readers = s.readers.map((r) => el('span', {}, r.group + ' (' + fmt(r.lag) + ')'));
    const fields = s.schema ? s.schema.fields.map((f) => f.name + ': ' + f.type).join('\n') : '';
    return el('tr', { class: 'stream-row', 'data-name': s.name },
      el('td', {}, streamLink(s.name), s.compacted ? el('span', { class: 'dim' }, ' compacted') : ''),
      el('td', { title: fields }, schema), el('td', {}, s.key || '-'),
      el('td', { class: 'n' }, s.partitions), el('td', { class: 'n' }, fmt(s.records)),
      el('td', { class: 'n' }, Number(s.rate_per_s || 0).toFixed(1)),
      lines([...writers, ...publishers]), lines(readers));
  });
  document.querySelector('#streams tbody').replaceChildren(...rows);
  applyFilter();
}

function applyFilter() {
  const q = document.getElementById('filter').value.toLowerCase();
  document.querySelectorAll('#streams tr.stream-row').forEach((row) => {
    row.style.display = row.dataset.name.toLowerCase().includes(q) ? '' : 'none';
  });
}

function renderNodes(c) {
  const rows = c.nodes.map((n) => {
    const procs = n.processes.map((p) => el('span', { class: p.alive ? 'alive' : 'dead' },
      p.host + ':' + p.pid + ' ' + (p.engine || '') + ' ' + p.status));
    return el('tr', { class: 'node-row', 'data-name': n.name },
      el('td', {}, el('b', {}, n.name), ' ', el('span', { class: n.starting ? 'dim' : n.alive ? 'alive' : 'dead' },
        n.starting ? '◐ starting' : n.alive ? '●' : '○')),
      el('td', {}, n.topology), el('td', {}, n.kind || '-'), el('td', {}, n.reads.join(', ')),
      el('td', {}, n.writes.join(', ')), lines(procs));
  });
  document.querySelector('#nodes tbody').replaceChildren(...rows);
}

// -- graph ------------------------------------------------------------------------------------
function drawGraph(g) {
  const root = document.getElementById('graph');
  const [w, h] = g.box;
  root.setAttribute('width', g.width);
  root.setAttribute('height', g.height);
  root.setAttribute('viewBox', '0 0 ' + g.width + ' ' + g.height);
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svg('path', { d: 'M0,0L10,5L0,10z', fill: '#9aa4ae' }));
  defs.append(marker);
  const place = {};
  g.vertices.forEach((v) => { place[v.id] = v; });
  const edges = g.edges.map((e) => {
    const a = place[e.from], b = place[e.to];
    let d;
    if (e.back) {  // a cycle (or an edge within a column): an arc below both boxes
      const x1 = a.x + w, y1 = a.y + h / 2, x2 = b.x, y2 = b.y + h / 2;
      const drop = Math.max(y1, y2) + h;
      d = `M${x1},${y1} C${x1 + 40},${drop} ${x2 - 40},${drop} ${x2},${y2}`;
    } else {
      const x1 = a.x + w, y1 = a.y + h / 2, x2 = b.x, y2 = b.y + h / 2;
      const bend = Math.max(30, (x2 - x1) / 2);
      d = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
    }
    return svg('path', { d, class: 'edge' + (e.back ? ' back' : '') + (e.dead_letters ? ' letters' : ''),
      'marker-end': 'url(#arrow)',
      'data-from': e.from, 'data-to': e.to });
  });
  const vertices = g.vertices.map((v) => {
    const dead = v.kind === 'node' && !v.alive;
    const name = v.kind === 'stream' ? v.label : null;
    const group = svg('g', { class: v.kind + (dead ? ' dead' : '') +
      (name && name === state.stream ? ' selected' : ''), 'data-id': v.id });
    group.append(svg('rect', { x: v.x, y: v.y, width: w, height: h, rx: v.kind === 'stream' ? 16 : 3 }));
    group.append(svg('text', { x: v.x + 9, y: v.y + 16 }, short(v.label, 22)));
    let sub = v.kind;
    if (v.kind === 'stream' && v.rate != null) sub = Number(v.rate).toFixed(1) + ' records/s';
    if (v.kind === 'node') sub = v.declared_only ? 'declared, not running' :
      (v.starting ? 'starting' : v.alive ? 'alive' : 'not alive');
    group.append(svg('text', { x: v.x + 9, y: v.y + 30, class: 'sub' }, sub));
    group.append(svg('title', {}, v.kind + ' ' + v.label));
    if (name) group.addEventListener('click', () => selectStream(name));
    return group;
  });
  root.replaceChildren(defs, ...edges, ...vertices);
}

// -- last records -----------------------------------------------------------------------------
function renderSelect(c) {
  const select = document.getElementById('records-stream');
  const names = c.streams.map((s) => s.name);
  const current = Array.from(select.options).map((o) => o.value);
  if (names.join('\n') !== current.join('\n')) {
    select.replaceChildren(el('option', { value: '' }, '(choose a stream)'),
      ...names.map((n) => el('option', { value: n }, n)));
  }
  select.value = state.stream || '';
}

function selectStream(name) {
  state.stream = name;
  document.getElementById('records-stream').value = name;
  document.querySelectorAll('#graph g.stream').forEach((g) => {
    g.classList.toggle('selected', g.dataset.id === 'stream:' + name);
  });
  loadRecords();
}

let recordsTimer = null;
async function loadRecords() {
  clearTimeout(recordsTimer);
  const box = document.getElementById('records');
  const stream = state.stream;
  if (!stream) { box.replaceChildren(); return; }
  const n = document.getElementById('records-n').value || '10';
  try {
    const data = await getJSON('/api/records?stream=' + encodeURIComponent(stream) + '&n=' + n);
    if (stream !== state.stream) return;
    box.replaceChildren(el('p', { class: 'dim' }, data.records.length + ' newest records of ' + stream),
      ...data.records.map(recordBox));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
  if (document.getElementById('records-follow').checked) recordsTimer = setTimeout(loadRecords, POLL_MS);
}

function recordBox(r) {
  const head = el('div', {}, el('span', { class: 'where' }, r.where), '  ', when(r.timestamp),
    '  node=' + (r.node || '?') + (r.model_version ? '  model=' + r.model_version : ''), '  id=',
    el('code', {}, r.id));
  const trace = el('a', { href: '#', class: 'dim' }, ' lineage');
  trace.addEventListener('click', (e) => { e.preventDefault(); traceEvent(r.where); });
  head.append(trace);
  const body = el('pre', {}, r.error ? r.error : JSON.stringify(r.value, null, 1));
  return el('div', { class: 'record', 'data-where': r.where }, head, body);
}

// -- drift and model versions -----------------------------------------------------------------
async function refreshEvents() {
  try {
    const data = await getJSON('/api/events?n=30' + (SCOPE ? '&' + SCOPE : ''));
    const seen = state.seenEvents;
    const items = data.events.map((ev) => {
      const fresh = seen !== null && !seen.has(ev.where);
      const v = ev.value;
      const what = ev.kind === 'drift'
        ? `drift: ${v.node} on ${v.signal} at position ${v.position} (model ${v.model_version})`
        : `model ${v.model}: ${v.action} version ${v.version} (from ${v.from_version}, ${v.labels} labels` +
          (v.metric == null ? '' : ', metric ' + Number(v.metric).toFixed(4)) + ')';
      return el('li', { class: fresh ? 'fresh' : '', 'data-where': ev.where },
        el('span', { class: ev.kind }, what), el('br'),
        el('span', { class: 'dim' }, ev.where + '  ' + when(ev.timestamp) + (v.reason ? '  ' + v.reason : '')));
    });
    state.seenEvents = new Set(data.events.map((ev) => ev.where));
    document.getElementById('events').replaceChildren(...items);
    const none = document.getElementById('events-none');
    none.textContent = 'no drift or model-version events yet';  // after an error, once back
    none.style.display = items.length ? 'none' : '';
  } catch (e) {
    const none = document.getElementById('events-none');
    none.textContent = 'events: ' + e.message;
    none.style.display = '';
  }
  setTimeout(refreshEvents, POLL_MS);
}

// -- lineage ----------------------------------------------------------------------------------
async function traceEvent(text) {
  const input = document.getElementById('lineage-input');
  const out = document.getElementById('lineage-out');
  const note = document.getElementById('lineage-note');
  input.value = text;
  out.textContent = '';
  note.className = 'dim';
  note.textContent = 'tracing ' + text + '…';
  try {
    const data = await getJSON('/api/lineage?event=' + encodeURIComponent(text.trim()));
    out.textContent = data.tree.join('\n');
    out.dataset.id = data.trace.record.id;
    note.textContent = data.trace.fetches + ' fetches, ' +
      Math.round(data.trace.seconds * 1000) + ' ms' +
      (data.descendants_searched ? '' : '; ancestry only (give doa ui the topology file for descendants)');
  } catch (e) {
    note.className = 'error';
    note.textContent = e.message;
  }
}

// -- wiring -----------------------------------------------------------------------------------
function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get('stream')) selectStream(params.get('stream'));
  if (params.get('lineage')) traceEvent(params.get('lineage'));
}

document.getElementById('filter').addEventListener('input', applyFilter);
document.getElementById('records-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.stream = document.getElementById('records-stream').value || null;
  selectStream(state.stream);
});
document.getElementById('records-stream').addEventListener('change', (e) => selectStream(e.target.value || null));
document.getElementById('records-follow').addEventListener('change', loadRecords);
document.getElementById('lineage-form').addEventListener('submit', (e) => {
  e.preventDefault();
  traceEvent(document.getElementById('lineage-input').value);
});
refreshCatalog();
refreshEvents();
fromHash();
