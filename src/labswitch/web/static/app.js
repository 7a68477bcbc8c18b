// labswitch's page: confirm a run with its plan's summary, then follow its steps as they happen.
"use strict";

document.querySelectorAll("form.run-form").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { intent, group } = form.dataset;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await fetch(`/ui/plan?intent=${encodeURIComponent(intent)}&group=${encodeURIComponent(group)}`);
      const plan = await answer.json();
      if (plan.error) { alert(plan.error); return; }
      if (plan.refusals.length) { alert(`${intent} of ${group} is refused:\n\n${plan.refusals.join("\n")}`); return; }
      const what = intent === "down" ? `stop ${plan.vms} VMs and switch off ${plan.servers} servers` : `switch on ${plan.servers} servers and start ${plan.vms} VMs`;
      if (plan.steps === 0) { alert(`${group} is already ${intent}: nothing to do`); return; }
      if (confirm(`${intent === "down" ? "Down" : "Up"} of ${group}: ${what} (${plan.steps} steps). Go?`)) { form.submit(); }
    } finally {
      button.disabled = false;
    }
  });
});

// idle auto-down: the time left, ticking; at zero the service starts the down on its next sample
const countdowns = document.querySelectorAll(".countdown");
const hms = (s) => `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
const tickCountdowns = () => countdowns.forEach((el) => {
  const left = Math.max(0, Math.round(Number(el.dataset.downAt) - Date.now() / 1000));
  el.textContent = left > 0 ? hms(left) : "now";
});
if (countdowns.length) { tickCountdowns(); setInterval(tickCountdowns, 1000); }

const run = document.getElementById("run");
if (run && run.dataset.run) {
  run.classList.remove("hidden");
  const steps = document.getElementById("run-steps");
  const state = document.getElementById("run-state");
  const clock = document.getElementById("run-clock");
  let started = Date.now();  // until the run's own start arrives (event: run): the journal's, not the page's
  const mmss = (s) => `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  const tick = setInterval(() => { clock.textContent = mmss(Math.floor((Date.now() - started) / 1000)); }, 1000);
  // each host as the terminal's live table shows it: what it does or waits for, its VMs, its clock
  const hosts = document.getElementById("run-hosts");
  const cell = (row, text, cls) => { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
  const showHosts = (rows) => {
    const body = hosts.tBodies[0];
    body.replaceChildren();
    rows.forEach((h) => {
      const row = body.insertRow();
      row.dataset.server = h.server;
      if (h.failed) row.className = "failed"; else if (h.finished) row.className = "finished";
      cell(row, h.server);
      const state = cell(row, h.state, "host-state");
      if (h.note) { const note = document.createElement("span"); note.className = "note"; note.textContent = h.note; state.appendChild(note); }
      cell(row, `${h.vms_done}/${h.vms_total}`, "vms");
      cell(row, mmss(Math.floor(h.seconds)), "time");
    });
    hosts.classList.remove("hidden");
  };
  const source = new EventSource(`/ui/runs/${encodeURIComponent(run.dataset.run)}/events`);
  let past = false;  // a run that had ended when the page opened (from "Last runs"): shown, not left for the groups
  source.addEventListener("run", (event) => {
    const info = JSON.parse(event.data);
    if (typeof info.started === "number") started = info.started * 1000;
    past = Boolean(info.finished);
  });
  source.addEventListener("step", (event) => {
    const step = JSON.parse(event.data);
    const item = document.createElement("li");
    item.textContent = `${step.action} ${step.target}: ${step.detail}`;
    if (step.status !== "ok") item.className = "failed";
    steps.appendChild(item);
    steps.scrollTop = steps.scrollHeight;
    state.textContent = `${step.phase}…`;
  });
  source.addEventListener("hosts", (event) => showHosts(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    source.close();
    clearInterval(tick);
    const end = JSON.parse(event.data);
    if (typeof end.seconds === "number") clock.textContent = mmss(Math.round(end.seconds));  // the journal's time, not the page's
    const outcome = end.outcome || "finished";
    state.textContent = outcome === "ok" ? "done" : outcome;
    state.className = `outcome-${outcome}`;
    if (!past) setTimeout(() => { window.location.replace("/"); }, 1500);  // the groups' states, read again
  });
}
