// labswitch's page: the lab's live console. The lab (groups, hosts, VMs, vCenter, runs) comes as JSON with the page
// and again from /ui/lab/events whenever a new reading of the lab differs; a run is followed from its own events
// (one row per host, clocks from the run's journaled start); a button opens a sheet with the plan in brief.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
const pad = (n) => String(n).padStart(2, "0");
const clock = (seconds) => {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  return h ? `${h}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}` : `${pad(Math.floor(s / 60))}:${pad(s % 60)}`;
};
const make = (tag, text, className) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
};
const cell = (row, text, className) => row.appendChild(make("td", text, className));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const POWER_WORDS = { On: "● on", Off: "○ off" };  // a symbol and a word: never colour alone

const labData = $("#lab-data");  // absent on the login page
let lab = labData ? JSON.parse(labData.textContent) : null;
const hostsByName = () => Object.fromEntries(lab.hosts.map((h) => [h.name, h]));

// -- the lab ---------------------------------------------------------------------------------------------------
function renderLab(data) {
  lab = data;
  const error = $("#read-error");
  error.textContent = data.read_error ? `Lab not read: ${data.read_error}. Power is from the BMCs alone.` : "";
  error.classList.toggle("hidden", !data.read_error);
  const watts = $("#energy-watts");
  if (watts) watts.textContent = `${data.watts} W`;  // the draw now, from the same reading as the groups
  renderGroups();
  renderLabView();
  renderRuns();
  renderRunPill();
  if (!followed && data.running) follow(data.running.run_id);  // a run started elsewhere (the CLI, MQTT, a schedule)
}

function renderGroups() {
  const hosts = hostsByName();
  const box = $("#groups");
  lab.groups.forEach((g) => {
    let card = $(`section.group[data-group="${CSS.escape(g.name)}"]`, box);
    if (!card) {
      card = $("#t-group").content.firstElementChild.cloneNode(true);
      card.dataset.group = g.name;
      card.setAttribute("aria-label", `group ${g.name}`);
      $$("button[data-intent]", card).forEach((b) => b.addEventListener("click", () => openSheet(b.dataset.intent, g.name, b)));
      box.appendChild(card);
    }
    $("h2", card).textContent = g.name;
    const state = $(".state", card);
    state.textContent = g.state;
    state.className = `state state-${g.state.replace(/ /g, "-")}`;
    const auto = $(".auto", card);
    auto.replaceChildren();
    if (g.down_at) {
      const idle = make("span", "idle: auto-down in ", "idle");
      const countdown = make("span", "…", "countdown");
      countdown.dataset.downAt = g.down_at;
      idle.appendChild(countdown);
      auto.appendChild(idle);
    }
    if (g.next) auto.appendChild(make("span", `next: ${g.next}`, "quiet"));
    auto.classList.toggle("hidden", !g.down_at && !g.next);
    const body = $("tbody", card);
    body.replaceChildren();
    g.servers.forEach((name) => {
      const h = hosts[name] || { name, power: "Unknown" };
      const row = body.insertRow();
      row.dataset.server = name;
      cell(row, name);
      const power = cell(row, POWER_WORDS[h.power] || "? unknown", `power power-${(h.power || "unknown").toLowerCase()}`);
      power.dataset.power = h.power || "Unknown";
      if (h.power_error) power.title = h.power_error;
      cell(row, typeof h.watts === "number" ? Math.round(h.watts) : "–", "num");
      cell(row, (h.connection || "–") + (h.maintenance ? " · maintenance" : ""), "connection");
      cell(row, h.vms_on ?? 0, "num vms-on");
    });
    $(".always-on", card).classList.toggle("hidden", !g.always_on);
    $(".buttons", card).classList.toggle("hidden", g.always_on);
    $$("button[data-intent]", card).forEach((b) => { b.disabled = Boolean(lab.running); });
  });
  tickCountdowns();
}

function renderLabView() {
  const vc = $("#vcenter");
  vc.classList.toggle("hidden", !lab.vcenter);
  if (lab.vcenter) {
    vc.replaceChildren(make("strong", "vCenter: "), make("span", lab.vcenter.text, `vcenter-${lab.vcenter.state.replace(/ /g, "-")}`));
  }
  const changes = $("#changes");
  changes.replaceChildren(...lab.cluster_changes.map((c) => make("li", c.text)));
  const box = $("#lab-hosts");
  const open = new Set($$("details[open]", box).map((d) => d.dataset.host));
  box.replaceChildren();
  lab.hosts.forEach((h) => {
    const details = make("details", null, "host-vms");
    details.dataset.host = h.name;
    details.open = open.has(h.name);
    const workload = h.vms.filter((v) => !v.system);
    const where = h.cluster ? ` · ${h.cluster}` : "";
    const agents = h.vms.length - workload.length;
    details.appendChild(make("summary", `${h.name}${where} · ${h.vms_on} of ${plural(workload.length, "VM")} on${agents ? ` · ${plural(agents, "vCLS agent")}` : ""}`));
    if (h.vms.length) {
      const table = make("table", null, "vms");
      const head = table.createTHead().insertRow();
      ["VM", "power", "tags"].forEach((t) => { const th = make("th", t); th.scope = "col"; head.appendChild(th); });
      const body = table.createTBody();
      h.vms.forEach((v) => {
        const row = body.insertRow();
        const name = cell(row, v.name);
        if (v.system === "vcls") name.appendChild(make("span", " vCLS (vSphere's own: never stopped)", "badge"));
        const on = v.power === "poweredOn";
        cell(row, on ? "● on" : v.power === "suspended" ? "◐ suspended" : "○ off", on ? "power-on" : "power-off");
        cell(row, v.tags.join(", ") || "–", "tags");
      });
      details.appendChild(table);
    } else {
      details.appendChild(make("p", "no VMs read", "quiet"));
    }
    box.appendChild(details);
  });
  $("#notes").replaceChildren(...lab.notes.map((n) => make("li", `note: ${n}`)));
}

function renderRuns() {
  const body = $("#runs");
  body.replaceChildren();
  if (!lab.runs.length) cell(body.insertRow(), "no runs yet", "quiet").colSpan = 4;
  lab.runs.forEach((r) => {
    const row = body.insertRow();
    const link = make("a", r.started);
    link.href = `/?run=${encodeURIComponent(r.id)}`;
    row.insertCell().appendChild(link);
    const what = cell(row, r.intent);
    if (r.reason) what.appendChild(make("span", ` (${r.reason})`, "quiet"));
    cell(row, r.groups);
    cell(row, r.outcome, `outcome-${r.outcome}`);
  });
}

function renderRunPill() {
  const pill = $("#run-pill");
  const running = lab.running;
  const elsewhere = running && running.run_id !== followed;
  pill.classList.toggle("hidden", !elsewhere);
  if (elsewhere) {
    pill.textContent = `▶ running: ${running.what}`;
    pill.href = `/?run=${encodeURIComponent(running.run_id)}`;
  }
}

const tickCountdowns = () => $$(".countdown").forEach((node) => {
  const left = Math.max(0, Math.round(Number(node.dataset.downAt) - Date.now() / 1000));
  node.textContent = left > 0 ? clock(left).padStart(7, "0:") : "now";
});

// -- a run, as the terminal shows it ---------------------------------------------------------------------------
let followed = null;  // the run id shown in the run card
let runStarted = null;  // the run's journaled start (ms), not the page's
let runEnded = null;
let hostRows = [];  // the last `hosts` event, each with the time it came
const expanded = new Set();  // clusters whose hosts are shown one by one
const COLLAPSE_OVER = 12;  // more hosts than this: a row per cluster, each opened on demand

let runSource = null;

function follow(runId) {
  if (runSource) runSource.close();
  followed = runId;
  runStarted = null;
  runEnded = null;
  hostRows = [];
  drawRunHosts();
  const card = $("#run");
  card.classList.remove("hidden");
  card.dataset.run = runId;
  $("#run-steps").replaceChildren();
  $("#run-steps-count").textContent = "0";
  const state = $("#run-state");
  state.textContent = "starting…";
  state.className = "";
  renderRunPill();
  const source = new EventSource(`/ui/runs/${encodeURIComponent(runId)}/events`);
  runSource = source;
  source.addEventListener("run", (event) => {
    const info = JSON.parse(event.data);
    if (typeof info.started === "number") runStarted = info.started * 1000;
    tickRun();
    $("#run-title").textContent = info.intent ? `${info.intent} of ${info.groups.join(", ")}` : `Run ${runId}`;
    if (!info.finished) state.textContent = "under way";
    else $("#run-steps-box").open = true;  // a past run looked at: its steps are what it is opened for
  });
  source.addEventListener("step", (event) => {
    const step = JSON.parse(event.data);
    const list = $("#run-steps");
    const item = make("li", null, step.status !== "ok" ? "failed" : "");
    item.append(make("span", `${list.children.length + 1}.`, "n"), make("span", `${step.action} ${step.target}: ${step.detail}`));
    if (step.status !== "ok") item.lastChild.prepend(`${step.status}: `);
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    $("#run-steps-count").textContent = list.children.length;
    if (runEnded === null) state.textContent = `${step.phase}…`;
  });
  source.addEventListener("hosts", (event) => {
    const now = Date.now();
    hostRows = JSON.parse(event.data).map((r) => ({ ...r, at: now }));
    drawRunHosts();
  });
  source.addEventListener("wide", (event) => toggleLabWide(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    source.close();
    const end = JSON.parse(event.data);
    runEnded = Date.now();
    if (typeof end.seconds === "number") $("#run-clock").textContent = clock(end.seconds);  // the journal's time
    const outcome = end.outcome || "finished";
    state.textContent = outcome === "ok" ? "done" : outcome;
    state.className = `outcome-${outcome}`;
    hostRows = hostRows.map((r) => ({ ...r, finished: r.finished || outcome !== "running" }));
    drawRunHosts();
    toggleLabWide(null);
    renderRunPill();
  });
}

function toggleLabWide(text) {
  const node = $("#run-lab-wide");
  node.textContent = text || "";
  node.classList.toggle("hidden", !text);
}

const kind = (state) => state.replace(/^\S+: /, "").replace(/ \d\d:\d\d\b.*$/, "");  // "esx11-vm03: shutting down 00:45" -> "shutting down"
const rowSeconds = (r) => r.seconds + (r.finished || runEnded !== null ? 0 : (Date.now() - r.at) / 1000);

function hostRow(r) {
  const row = make("tr", null, r.failed ? "failed" : r.finished ? "finished" : "");
  row.dataset.server = r.server;
  row.appendChild(make("th", r.server)).scope = "row";
  const state = cell(row, r.finished && !r.failed ? `✓ ${r.state}` : r.failed ? `✗ ${r.state}` : r.state, "host-state");
  if (r.note) state.appendChild(make("span", r.note, "note"));
  const vms = cell(row, null, "vms");
  const bar = make("progress");
  bar.max = Math.max(r.vms_total, 1);
  bar.value = r.vms_total ? r.vms_done : 1;
  bar.setAttribute("aria-label", `${r.server}: ${r.vms_done} of ${r.vms_total} VMs done`);
  vms.append(bar, make("span", `${r.vms_done}/${r.vms_total}`, "count"));
  cell(row, clock(rowSeconds(r)), "time");
  return row;
}

function drawRunHosts() {
  const table = $("#run-hosts");
  $$("tbody", table).forEach((b) => b.remove());
  const hosts = hostsByName();
  const collapse = hostRows.length > COLLAPSE_OVER;
  const clusters = new Map();
  hostRows.forEach((r) => {
    const key = collapse ? (hosts[r.server] && hosts[r.server].cluster) || r.group || "-" : "";
    if (!clusters.has(key)) clusters.set(key, []);
    clusters.get(key).push(r);
  });
  clusters.forEach((rows, key) => {
    const body = table.appendChild(make("tbody"));
    if (collapse) {
      const head = body.insertRow();
      head.className = "cluster-row";
      const th = head.appendChild(make("th"));
      th.colSpan = 4;
      th.scope = "rowgroup";
      const counts = {};
      rows.forEach((r) => { const k = kind(r.state); counts[k] = (counts[k] || 0) + 1; });
      const done = rows.reduce((n, r) => n + r.vms_done, 0);
      const total = rows.reduce((n, r) => n + r.vms_total, 0);
      const button = make("button", `${expanded.has(key) ? "▾" : "▸"} ${key} · ${plural(rows.length, "host")}: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ")} · VMs ${done}/${total}`, "cluster-toggle");
      button.type = "button";
      button.setAttribute("aria-expanded", String(expanded.has(key)));
      button.addEventListener("click", () => { if (expanded.has(key)) expanded.delete(key); else expanded.add(key); drawRunHosts(); });
      th.appendChild(button);
    }
    if (!collapse || expanded.has(key)) rows.forEach((r) => body.appendChild(hostRow(r)));
  });
  table.classList.toggle("hidden", hostRows.length === 0);
}

function tickRun() {
  if (runStarted === null || !followed) return;
  if (runEnded === null) $("#run-clock").textContent = clock((Date.now() - runStarted) / 1000);
  $$("#run-hosts tr[data-server] td.time").forEach((td) => {
    const r = hostRows.find((x) => x.server === td.parentElement.dataset.server);
    if (r) td.textContent = clock(rowSeconds(r));
  });
}

setInterval(() => { tickCountdowns(); tickRun(); }, 1000);

// -- the confirmation sheet ------------------------------------------------------------------------------------
const sheet = $("#sheet");

async function openSheet(intent, group, opener, restore = false) {
  $("#sheet-intent").value = intent;
  $("#sheet-group").value = group;
  $("#sheet-title").textContent = `${intent === "down" ? "Down" : "Up"} of ${group}`;
  $("#sheet-what").textContent = "reading the lab for the plan…";
  $("#sheet-go").disabled = true;
  $("#sheet-go").className = intent;
  $("#sheet-go").textContent = intent === "down" ? "Switch off" : "Switch on";
  ["#sheet-refusals", "#sheet-clusters", "#sheet-notes", "#sheet-steps"].forEach((s) => $(s).replaceChildren());
  $("#sheet-hosts tbody").replaceChildren();
  $("#sheet-vcenter").classList.add("hidden");
  $("#sheet-restore").checked = restore;
  if (!sheet.open) sheet.showModal();
  sheet.opener = opener;
  let plan;
  try {
    const answer = await fetch(`/ui/plan?intent=${encodeURIComponent(intent)}&group=${encodeURIComponent(group)}${restore ? "&restore=true" : ""}`);
    plan = await answer.json();
  } catch (error) {
    plan = { error: `the service did not answer (${error})` };
  }
  if (plan.error || plan.detail) {
    $("#sheet-what").textContent = "";
    $("#sheet-refusals").appendChild(make("p", plan.error || plan.detail, "refusal"));
    return;
  }
  fillSheet(plan, intent);
}

function fillSheet(plan, intent) {
  const b = plan.brief;
  const hosts = b.hosts.length;
  const verb = intent === "down" ? `stop ${plural(b.vms, "VM")} and switch off ${plural(plan.servers.length, "server")}` : `switch on ${plural(plan.servers.length, "server")} and start ${plural(b.vms, "VM")}`;
  $("#sheet-what").textContent = plan.steps.length ? `${verb}: ${plural(plan.steps.length, "step")} on ${plural(hosts, "host")}.` : `nothing to do: ${plan.groups.join(", ")} is already ${intent}.`;
  plan.refusals.forEach((r) => $("#sheet-refusals").appendChild(make("p", `refused: ${r}`, "refusal")));
  $("#sheet-vm-word").textContent = intent === "down" ? "VMs to stop" : "VMs to start";
  const body = $("#sheet-hosts tbody");
  b.hosts.forEach((h) => {
    const row = body.insertRow();
    row.dataset.host = h.host;
    row.appendChild(make("th", h.host)).scope = "row";
    cell(row, h.group);
    const vms = cell(row, String(h.vms.length + h.hard.length + h.left.length));
    vms.appendChild(make("span", intent === "down" ? " VMs to stop" : " VMs to start", "phone-only"));
    vms.title = [...h.vms, ...h.hard, ...h.left].join(", ");
    if (h.hard.length) vms.appendChild(make("span", ` (${h.hard.length} hard power-off)`, "warn"));
    if (h.left.length) vms.appendChild(make("span", ` (${h.left.length} without Tools stay on)`, "bad"));
    cell(row, h.steps.join(" → ") || "–", "wrap");
  });
  b.clusters.forEach((c) => $("#sheet-clusters").appendChild(make("li", `cluster ${c.cluster}: ${c.changes.join(" → ")}${b.cluster_note ? ` (${b.cluster_note})` : ""}`)));
  if (b.vcenter) { $("#sheet-vcenter").textContent = b.vcenter; $("#sheet-vcenter").classList.remove("hidden"); }
  plan.notes.forEach((n) => $("#sheet-notes").appendChild(make("li", `note: ${n}`)));
  const restorable = intent === "up" && (plan.notes.some((n) => n.includes("--restore")) || $("#sheet-restore").checked);
  $("#sheet-restore-box").classList.toggle("hidden", !restorable);
  plan.steps.forEach((s, i) => {
    const item = make("li");
    item.append(make("span", `${i + 1}.`, "n"), make("span", s.label));
    item.id = `step-${s.id}`;
    $("#sheet-steps").appendChild(item);
  });
  $("#sheet-steps-count").textContent = plan.steps.length;
  $("#sheet-go").disabled = plan.refusals.length > 0 || plan.steps.length === 0;
  if (!$("#sheet-go").disabled) $("#sheet-go").focus();
}

function wireSheet() {
  $("#sheet-cancel").addEventListener("click", () => sheet.close());
  sheet.addEventListener("close", () => { if (sheet.opener) sheet.opener.focus(); });
  $("#sheet-restore").addEventListener("change", (event) => openSheet($("#sheet-intent").value, $("#sheet-group").value, sheet.opener, event.target.checked));
  $("#sheet-form").addEventListener("submit", () => { $("#sheet-go").disabled = true; $("#sheet-go").textContent = "starting…"; });
}

// -- the charts: a mark's value on hover, keyboard focus or tap ------------------------------------------------
$$(".chart [data-label]").forEach((mark) => {
  const show = () => { $("output.chart-value", mark.closest("figure")).textContent = mark.dataset.label; };
  ["mouseenter", "focus", "click"].forEach((kind) => mark.addEventListener(kind, show));
});

// -- start -------------------------------------------------------------------------------------------------------
if (lab) {
  wireSheet();
  const wanted = $("#run").dataset.run;  // ?run=ID (a past run looked at), or the run in progress
  if (wanted) follow(wanted);
  renderLab(lab);
  new EventSource("/ui/lab/events").addEventListener("lab", (event) => renderLab(JSON.parse(event.data)));
}
