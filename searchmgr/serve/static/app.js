// searchmgr dashboard: runs, the live tree (fetched by revision), a node panel, a person's commands.
// Everything from the server is shown with textContent: LLM text and notes are never markup.
"use strict";

const S = {
  runs: [], run: null, rev: null, nodes: new Map(), best: [], fixed: [], summary: null, surface: [],
  selected: null, panelRev: null, detail: null, commandsRev: null,
};
const POLL_MS = 1000;
const $ = id => document.getElementById(id);

// the write token, when the service has one: opened as URL#token=..., kept for this tab only
(function keepToken() {
  const m = /token=([^&]+)/.exec(location.hash);
  if (m) { sessionStorage.setItem("searchmgr-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
})();

async function api(path, body) {
  const opts = {headers: {}};
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem("searchmgr-token");
    if (token) opts.headers["Authorization"] = "Bearer " + token;
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = {detail: r.statusText}; }
  return {status: r.status, data};
}

const fmt = v => (v === null || v === undefined) ? "-" : (typeof v === "number" ? +v.toPrecision(4) + "" : String(v));
function text(el, value) { el.textContent = value; return el; }
function el(tag, parent, value, cls) {
  const e = document.createElement(tag);
  if (value !== undefined) e.textContent = value;
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
function runPath(suffix) { return `/api/runs/${encodeURIComponent(S.run)}${suffix}`; }

// runs ------------------------------------------------------------------------------------------
async function pollRuns() {
  const {status, data} = await api("/api/runs");
  if (status !== 200) return;
  S.runs = data.runs;
  if (!S.run && S.runs.length) selectRun(S.runs[0].id);
  renderRuns();
}

function renderRuns() {
  const body = $("runs").tBodies[0];
  clear(body);
  for (const listed of S.runs) {
    const r = listed.id === S.run && S.summary ? S.summary : listed;  // the current run: as the tree shows it
    const tr = el("tr", body);
    tr.dataset.run = r.id;
    if (r.id === S.run) tr.className = "current";
    if (r.error) { el("td", tr, r.id); el("td", tr, r.error).colSpan = 6; continue; }
    for (const v of [r.id, r.task, r.status, r.best ? fmt(r.best.val_score) : "-",
                     r.fixed ? fmt(r.fixed.val_score) : "-", `${r.steps_used}/${r.budget_steps}`, r.nodes]) el("td", tr, v);
    tr.addEventListener("click", () => selectRun(r.id));
  }
}

function selectRun(id) {
  if (S.run === id) return;
  Object.assign(S, {run: id, rev: null, nodes: new Map(), selected: null, detail: null, panelRev: null, commandsRev: null});
  $("panel-body").hidden = true; $("panel-empty").hidden = false;
  $("download").href = runPath("/schedule");
  pollTree();
}

// the tree ---------------------------------------------------------------------------------------
async function pollTree() {
  if (!S.run) return;
  const run = S.run;
  const {status, data} = await api(runPath(S.rev === null ? "/tree" : `/tree?after=${S.rev}`));
  if (status !== 200 || run !== S.run) return;
  const changed = data.full || data.nodes.length > 0 || data.revision !== S.rev;
  if (data.full) { S.nodes = new Map(); S.surface = data.surface; }
  for (const n of data.nodes) S.nodes.set(n.id, n);
  S.best = data.best_path; S.fixed = data.fixed_path; S.summary = data.summary;
  renderRuns();
  const revChanged = data.revision !== S.rev;
  S.rev = data.revision;
  showSummary();
  if (changed) renderTree();
  if (revChanged) {
    renderSchedule();
    if (S.selected !== null) loadNode(S.selected);
    pollCommands();
  }
}

function showSummary() {
  const s = S.summary;
  text($("run-title"), `${s.id} · ${s.task} · ${s.metric} (${s.direction}) · steps ${s.steps_used}/${s.budget_steps}`);
  const st = $("run-status");
  text(st, s.status); st.className = "status " + s.status;
  st.title = [s.state_reason, s.hint].filter(Boolean).join("; ");  // why, and how to continue
  $("pause").disabled = !s.accepts.includes("pause");
  $("resume").disabled = !s.accepts.includes("resume");
  $("stop").disabled = !s.accepts.includes("stop");
  text($("run-gain"), gainText(s));
}

function layout() {
  const kids = new Map();
  let root = null;
  for (const n of [...S.nodes.values()].sort((a, b) => a.id - b.id)) {
    kids.set(n.id, kids.get(n.id) || []);
    if (n.parent_id === null) root = n.id;
    else { if (!kids.has(n.parent_id)) kids.set(n.parent_id, []); kids.get(n.parent_id).push(n.id); }
  }
  const pos = new Map();
  let leaf = 0;
  const stack = root === null ? [] : [[root, false]];
  while (stack.length) {  // iterative post-order: a parent sits at the middle of its children
    const [id, done] = stack.pop();
    const ch = (kids.get(id) || []).filter(c => S.nodes.has(c));
    if (!done && ch.length) { stack.push([id, true]); for (let i = ch.length - 1; i >= 0; i--) stack.push([ch[i], false]); continue; }
    if (!ch.length) pos.set(id, leaf++);
    else pos.set(id, (pos.get(ch[0]) + pos.get(ch[ch.length - 1])) / 2);
  }
  return {pos, leaves: leaf};
}

function colour(n, rank) {
  if (!rank.has(n.id)) return "#ccc";
  return `hsl(${Math.round(120 * rank.get(n.id))}, 65%, 47%)`;  // green best, red worst of the whole run
}

function ranks() {  // each scored node's rank among all scored nodes of the run: 0 worst, 1 best
  const list = [...S.nodes.values()].filter(n => n.utility !== null && n.utility !== undefined);
  list.sort((a, b) => a.utility - b.utility);
  const rank = new Map();
  let i = 0;
  while (i < list.length) {  // ties share one rank
    let j = i;
    while (j + 1 < list.length && list[j + 1].utility === list[i].utility) j++;
    const r = list.length > 1 ? ((i + j) / 2) / (list.length - 1) : 1;
    for (let k = i; k <= j; k++) rank.set(list[k].id, r);
    i = j + 1;
  }
  return rank;
}

// the best schedule against the fixed recipe, in the objective's own direction (a return may be negative)
function gainText(s) {
  if (!s.best || !s.fixed || s.best.val_score === null || s.fixed.val_score === null) return "";
  const b = s.best.val_score, f = s.fixed.val_score, diff = b - f;
  const horizon = s.max_depth * s.segment_steps;  // where the fixed recipe's path stopped, when before the horizon
  const at = s.fixed.end_step != null && s.fixed.end_step < horizon ? ` at step ${s.fixed.end_step} of ${horizon}` : "";
  if (diff === 0) return `best ${fmt(b)} = fixed ${fmt(f)}${at}: no gain over the fixed recipe`;
  const better = (s.direction === "minimize") === (diff < 0);
  const rel = f !== 0 ? ` (${fmt(100 * Math.abs(diff) / Math.abs(f))}% of |fixed|)` : "";
  return `best ${fmt(b)} vs fixed ${fmt(f)}${at}: ${fmt(Math.abs(diff))} ${diff < 0 ? "lower" : "higher"}, ` +
         `${better ? "better" : "worse"}${rel}`;
}

function nodeMark(n, x, y, fill, g) {  // shape = who made the node (as in the report's tree.png)
  if (n.source === "human") return svgEl("rect", {class: "mark", x: x - 6, y: y - 6, width: 12, height: 12, fill}, g);
  if (n.parent_id === null) return svgEl("path", {class: "mark", d: `M${x},${y - 7} L${x + 7},${y} L${x},${y + 7} L${x - 7},${y} Z`, fill}, g);
  return svgEl("circle", {class: "mark", cx: x, cy: y, r: 6, fill}, g);
}

const LABEL_CHAR_PX = 5.4;  // width of one 9px label character, to start edges after a label
function nodeLabel(n) { return `${n.id}${n.val_score !== null ? " " + fmt(n.val_score) : ""}`; }

function renderTree() {
  const t0 = performance.now();
  const svg = $("tree");
  const {pos, leaves} = layout();
  const COL = 120, ROW = 18, M = 28;
  let maxDepth = 0;
  for (const n of S.nodes.values()) maxDepth = Math.max(maxDepth, n.depth);
  const rank = ranks();
  const W = M * 2 + COL * maxDepth + 60, H = M * 2 + ROW * Math.max(leaves - 1, 0) + 10;
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  const x = n => M + COL * n.depth, y = n => M + 6 + ROW * pos.get(n.id);
  const best = new Set(S.best.slice(1)), fixed = new Set(S.fixed.slice(1));
  const frag = document.createDocumentFragment();
  for (let d = 0; d <= maxDepth; d++) svgEl("text", {class: "depth", x: M + COL * d - 8, y: 12}, frag).textContent = `depth ${d}`;
  const edges = svgEl("g", {}, frag), marks = svgEl("g", {}, frag);
  for (const n of S.nodes.values()) {
    if (!pos.has(n.id)) continue;
    const p = S.nodes.get(n.parent_id);
    if (p && pos.has(p.id)) {  // from the end of the parent's label to the child's mark: no edge crosses a label
      const cls = best.has(n.id) ? "edge best" : fixed.has(n.id) ? "edge fixed" : "edge";
      const x0 = Math.min(x(p) + 12 + LABEL_CHAR_PX * nodeLabel(p).length, x(n) - 30), x1 = x(n) - 7;
      const mx = (x0 + x1) / 2;
      svgEl("path", {class: cls, d: `M${x0},${y(p)} C${mx},${y(p)} ${mx},${y(n)} ${x1},${y(n)}`}, edges);
    }
    const g = svgEl("g", {class: `node ${n.status}${n.id === S.selected ? " selected" : ""}`, "data-id": n.id,
                          "data-status": n.status, "data-source": n.source}, marks);
    const fill = n.status === "pending" ? "#fff" : colour(n, rank);
    if (n.id === S.selected) svgEl("circle", {class: "halo", cx: x(n), cy: y(n), r: 10}, g);  // besides its ring
    nodeMark(n, x(n), y(n), fill, g).setAttribute("data-fill", fill);
    svgEl("title", {}, g).textContent =
      `node ${n.id} · ${n.status} · ${n.source} · ${S.summary.metric}=${fmt(n.val_score)} · steps ${n.start_step}-${n.end_step}`;
    svgEl("text", {class: "label", x: x(n) + 9, y: y(n) + 3}, g).textContent = nodeLabel(n);
  }
  clear(svg);
  svg.appendChild(frag);
  const ms = performance.now() - t0;
  window.__treeRender = {nodes: S.nodes.size, ms, revision: S.rev};
  text($("tree-info"), `${S.nodes.size} nodes · revision ${S.rev} · drawn in ${ms.toFixed(0)} ms`);
}

$("tree").addEventListener("click", ev => {
  const g = ev.target.closest(".node");
  if (g) { S.selected = +g.dataset.id; renderTree(); loadNode(S.selected); }
});

// best schedule and commands ---------------------------------------------------------------------
function renderSchedule() {
  const body = $("schedule-table").tBodies[0];
  clear(body);
  for (const id of S.best.slice(1)) {
    const n = S.nodes.get(id);
    if (!n) continue;
    const tr = el("tr", body);
    for (const v of [`${n.start_step}-${n.end_step}`, n.id, n.source,
                     Object.entries(n.recipe).map(([k, v]) => `${k}=${fmt(v)}`).join(" "), fmt(n.val_score)]) el("td", tr, v);
  }
}

async function pollCommands() {
  const {status, data} = await api(runPath("/commands"));
  if (status !== 200) return;
  const ul = $("command-list");
  clear(ul);
  for (const c of data.commands.slice(-20).reverse()) {
    const what = c.kind === "child" ? `child of node ${c.node_id} ${JSON.stringify(c.recipe)}` :
                 c.kind === "close" ? `close subtree of node ${c.node_id}` : c.kind;
    el("li", ul, `#${c.id} ${what}: ${c.status}${c.result ? " — " + c.result : ""}`, c.status === "rejected" ? "rejected" : "");
  }
}

async function control(kind) {
  const {status, data} = await api(runPath("/" + kind), {});
  const msg = $("control-msg");
  text(msg, status === 202 ? `${kind} queued (command ${data.command})` : data.detail);
  msg.className = "msg " + (status === 202 ? "ok" : "err");
  pollTree();
}
for (const kind of ["pause", "resume", "stop"]) $(kind).addEventListener("click", () => control(kind));

// the node panel ---------------------------------------------------------------------------------
async function loadNode(id) {
  const run = S.run;
  const {status, data} = await api(runPath(`/nodes/${id}`));
  if (status !== 200 || run !== S.run || id !== S.selected) return;
  const first = !S.detail || S.detail.node.id !== id;
  S.detail = data;
  renderPanel(first);
}

function dl(target, rows) {
  clear(target);
  for (const [k, v] of rows) {
    if (v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length)) continue;
    el("dt", target, k); el("dd", target, v);
  }
}

function renderPanel(first) {
  const d = S.detail, n = d.node;
  $("panel-empty").hidden = true; $("panel-body").hidden = false;
  text($("node-title"), `node ${n.id} · ${n.status} · ${n.source}`);
  text($("node-meta"), `depth ${n.depth}, steps ${n.start_step}-${n.end_step} (${n.steps_trained} trained), ` +
       `parent ${n.parent_id === null ? "-" : n.parent_id}, visits ${n.visits}` + (n.error ? `, error: ${n.error}` : ""));
  const body = $("recipe").tBodies[0];
  clear(body);
  for (const [k, v] of Object.entries(n.recipe)) {
    const tr = el("tr", body);
    const p = d.parent_recipe ? d.parent_recipe[k] : null;
    let change = "";
    if (p !== null && p !== undefined && p !== v) change = p > 0 && v > 0 ? `×${fmt(v / p)} (${v > p ? "+" : ""}${fmt(v - p)})` : `${v > p ? "+" : ""}${fmt(v - p)}`;
    for (const c of [k, fmt(v), fmt(p), change]) el("td", tr, c);
  }
  renderCurves(first);
  const dec = d.decision;
  dl($("decision"), dec ? [
    ["by", `${dec.source} (${dec.verdict})`], ["note", dec.note], ["diagnosis", dec.diagnosis],
    ["updates", (dec.updates || []).map(u => u.op === "hold" ? `${u.knob} hold` : `${u.knob} ${u.op} ${fmt(u.value)}`).join(", ") || "none (hold)"],
    ["expected", dec.expected_outcome], ["watch", (dec.watch_items || []).join("; ")], ["evidence", dec.evidence],
  ] : [["by", n.parent_id === null ? "root: the task's base recipe" : "-"]]);
  const o = d.observed;
  dl($("observed"), [
    [d.metric, fmt(o.val_score)], ["parent", fmt(o.parent_val_score)],
    ["change", o.change !== undefined ? `${fmt(o.change)} (${o.improved ? "better" : "not better"})` : null],
    ["test", fmt(o.test_score)],
    ["last eval", Object.entries(o.last_metrics || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(" ")],
  ]);
  const at = $("attempts");
  clear(at);
  for (const a of d.attempts) el("li", at, `${a.source} ${a.verdict}: ${a.reason || ""}${a.note ? " — note: " + a.note : ""}`, a.verdict);
  if (!d.attempts.length) el("li", at, "none");
  const st = $("stopper");
  clear(st);
  for (const v of d.stopper) el("li", st, `step ${fmt(v.step)}: ${v.verdict}${v.applied ? " (applied)" : ""} — ${v.reason || ""}`);
  if (!d.stopper.length) el("li", st, "none");
  $("branch").hidden = !d.can_branch;
  if (first) {
    buildKnobInputs(n);
    text($("child-msg"), ""); text($("close-msg"), "");
  }
}

function renderCurves(first) {
  const d = S.detail, sel = $("curve-key");
  const keys = Object.keys(d.curves).sort();
  const suffix = d.metric.split("/").slice(1).join("/");
  if (first || sel.options.length !== keys.length + 1) {
    const keep = sel.value;
    clear(sel);
    el("option", sel, `*/${suffix}`).value = "";
    for (const k of keys) el("option", sel, k).value = k;
    sel.value = keys.includes(keep) ? keep : "";
  }
  const chosen = sel.value ? [sel.value] : keys.filter(k => k.split("/").slice(1).join("/") === suffix);
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  lineChart($("chart"), chosen.map((k, i) => ({name: k, color: colours[i % colours.length], points: d.curves[k]})),
            [d.node.start_step, d.node.end_step]);
}
$("curve-key").addEventListener("change", () => renderCurves(false));

function buildKnobInputs(n) {
  const box = $("knob-inputs");
  clear(box);
  for (const k of S.surface) {
    const label = el("label", box, k.name + " ");
    const input = el("input", label);
    input.type = "number"; input.step = "any"; input.name = k.name; input.value = n.recipe[k.name];
    input.dataset.original = String(n.recipe[k.name]);
    el("span", label, ` [${k.range[0]}, ${k.range[1]}], ${k.step_limit}`, "bounds");
  }
  $("child-note").value = "";
}

$("child-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const recipe = {};
  for (const input of $("knob-inputs").querySelectorAll("input")) {
    if (input.value !== input.dataset.original) recipe[input.name] = input.value === "" ? null : Number(input.value);
  }
  const parent = S.selected;
  const {status, data} = await api(runPath(`/nodes/${parent}/children`), {recipe, note: $("child-note").value});
  const msg = $("child-msg");
  clear(msg);
  msg.className = "msg " + (status === 202 ? "ok" : "err");
  if (status === 202) { text(msg, data.message); pollTree(); return; }
  el("div", msg, `rejected (HTTP ${status}): ` + (data.reasons ? "" : data.detail));
  const ul = el("ul", msg);
  for (const r of data.reasons || []) el("li", ul, r, "reason");
});

$("close-subtree").addEventListener("click", async () => {
  const {status, data} = await api(runPath(`/nodes/${S.selected}/close`), {});
  const msg = $("close-msg");
  text(msg, status === 202 ? `close queued (command ${data.command})` : data.detail);
  msg.className = "msg " + (status === 202 ? "ok" : "err");
});

// start ------------------------------------------------------------------------------------------
async function loop() {
  try { await pollTree(); } catch (e) { text($("tree-info"), "service unreachable: " + e.message); }
  setTimeout(loop, POLL_MS);
}
pollRuns().then(loop);
setInterval(() => pollRuns().catch(() => {}), 3000);
