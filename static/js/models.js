/* The models page: live progress of the pipeline run, training curves, retrain / activate /
   roll back with a confirmation. Uses Curation.api, setProgress and linePlot from app.js. */
(function () {
  "use strict";
  const root = document.getElementById("models-page");
  if (!root) return;
  const C = window.Curation;
  const canManage = root.dataset.canManage === "1";
  const POLL_MS = 1000;
  let pollTimer = null;
  let watchedRunId = null;

  const $ = (sel) => document.querySelector(sel);

  function message(text, isError) {
    const el = $("#page-message");
    el.textContent = text;
    el.classList.remove("hidden");
    el.classList.toggle("error", !!isError);
  }

  function confirmDialog(text) {
    return new Promise((resolve) => {
      const modal = $("#confirm");
      $("#confirm-text").textContent = text;
      modal.classList.remove("hidden");
      const done = (answer) => {
        modal.classList.add("hidden");
        $("#confirm-yes").onclick = null;
        $("#confirm-no").onclick = null;
        resolve(answer);
      };
      $("#confirm-yes").onclick = () => done(true);
      $("#confirm-no").onclick = () => done(false);
      $("#confirm-yes").focus();
    });
  }

  function fmt(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : String(value);
  }

  function stepDetail(step) {
    const parts = [];
    if (step.unit) parts.push(`${step.done}/${step.total} ${step.unit}`);
    ["loss", "val_auc", "pair_auc", "baseline_auc", "fitb", "oof_accuracy", "embedded", "reused"].forEach((k) => {
      if (step[k] !== undefined && step[k] !== null) parts.push(`${k.replace("_", " ")} ${fmt(step[k])}`);
    });
    if (step.reason) parts.push(step.reason);
    if (step.decisions) Object.entries(step.decisions).forEach(([k, v]) => parts.push(`${k}: ${v}`));
    return parts.join(" · ");
  }

  function renderRun(run) {
    const summary = $("#run-summary");
    const table = $("#run-steps");
    const err = $("#run-error");
    if (!run) {
      summary.textContent = "No run yet.";
      table.classList.add("hidden");
      return;
    }
    root.dataset.runStatus = run.status;
    root.dataset.runId = String(run.id);
    summary.textContent = `Run ${run.id} (${run.trigger}${run.forced ? ", forced" : ""}): ${run.status}` +
      (run.current_step ? ` — ${run.steps[run.current_step].label}` : "");
    err.classList.toggle("hidden", run.status !== "failed");
    err.textContent = run.status === "failed" ? run.error.split("\n")[0] : "";
    const body = table.querySelector("tbody");
    body.innerHTML = "";
    run.step_order.forEach((name) => {
      const step = run.steps[name] || { state: "pending", done: 0, total: 0, label: name };
      const tr = document.createElement("tr");
      tr.dataset.step = name;
      tr.dataset.state = step.state;
      const label = document.createElement("td");
      label.textContent = step.label || name;
      const barCell = document.createElement("td");
      const bar = document.createElement("div");
      bar.className = "progress";
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", step.label || name);
      bar.innerHTML = '<div class="bar"></div>';
      barCell.appendChild(bar);
      const finished = step.state === "done" || step.state === "skipped";
      C.setProgress(bar, finished ? 1 : step.done || 0, finished ? 1 : step.total || 0);
      const state = document.createElement("td");
      state.textContent = step.state;
      const detail = document.createElement("td");
      detail.className = "muted";
      detail.textContent = stepDetail(step);
      tr.append(label, barCell, state, detail);
      body.appendChild(tr);
    });
    table.classList.remove("hidden");
  }

  async function poll() {
    let data;
    try {
      data = await C.api(root.dataset.statusUrl);
    } catch (e) {
      message(`Cannot read the run status: ${e.message}`, true);
      schedule(5 * POLL_MS);
      return;
    }
    $("#new-labels").textContent = `${data.new_labels} / ${data.retrain_min_new_labels}`;
    renderRun(data.run);
    const running = data.run && (data.run.status === "queued" || data.run.status === "running");
    if (running) {
      watchedRunId = data.run.id;
      const btn = $("#retrain");
      if (btn) btn.disabled = true;
      schedule(POLL_MS);
    } else if (watchedRunId !== null && data.run && data.run.id === watchedRunId) {
      // The run we watched has finished: reload once so the versions table shows its models.
      watchedRunId = null;
      sessionStorage.setItem("models-finished-run", String(data.run.id));
      window.location.reload();
    } else {
      const btn = $("#retrain");
      if (btn) btn.disabled = false;
    }
  }

  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  async function retrain() {
    const force = $("#retrain-force").checked;
    const ok = await confirmDialog(force
      ? "Retrain now and activate the new models even if they evaluate worse?"
      : "Retrain now? The new models are activated only if they are not worse than the active ones.");
    if (!ok) return;
    try {
      const run = await C.api(root.dataset.runsUrl, { method: "POST", json: { force } });
      watchedRunId = run.id;
      message(`Run ${run.id} queued.`);
      renderRun(run);
      schedule(200);
    } catch (e) {
      message(e.message, true);
    }
  }

  async function activate(versionId, kind) {
    if (!(await confirmDialog(`Activate ${kind} version v${versionId}? Every page switches to it within seconds.`))) return;
    try {
      await C.api(`${root.dataset.versionsUrl}${versionId}/activate/`, { method: "POST", json: {} });
      window.location.reload();
    } catch (e) {
      message(e.message, true);
    }
  }

  async function rollback(kind) {
    const what = kind ? `the ${kind} model` : "every model of the last release";
    if (!(await confirmDialog(`Roll back ${what} to the previously active version?`))) return;
    try {
      await C.api(root.dataset.rollbackUrl, { method: "POST", json: kind ? { kind } : {} });
      window.location.reload();
    } catch (e) {
      message(e.message, true);
    }
  }

  async function showCurves(versionId) {
    let version;
    try {
      version = await C.api(`${root.dataset.versionsUrl}${versionId}/`);
    } catch (e) {
      message(e.message, true);
      return;
    }
    $("#curves-title").textContent = `v${version.id} (${version.kind})`;
    const history = version.history || [];
    const loss = { name: "loss", points: history.filter((h) => h.loss !== null && h.loss !== undefined).map((h) => [h.epoch, h.loss]) };
    const auc = { name: "validation AUC", color: "#1f8a4c",
      points: history.filter((h) => h.val_auc !== null && h.val_auc !== undefined).map((h) => [h.epoch, h.val_auc]) };
    const lossBox = $("#loss-plot"), aucBox = $("#auc-plot");
    lossBox.innerHTML = "";
    aucBox.innerHTML = "";
    lossBox.appendChild(C.linePlot([loss], { width: 520, xLabel: "epoch", yLabel: "loss" }));
    aucBox.appendChild(C.linePlot([auc], { width: 520, yMin: 0.5, yMax: 1, xLabel: "epoch", yLabel: "AUC" }));
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target;
    if (!(t instanceof HTMLElement)) return;
    if (t.classList.contains("show-curves")) {
      ev.preventDefault();
      showCurves(t.dataset.version);
    } else if (canManage && t.classList.contains("activate")) {
      activate(t.dataset.version, t.dataset.kind);
    } else if (canManage && t.classList.contains("rollback")) {
      rollback(t.dataset.kind);
    }
  });
  if (canManage) {
    $("#retrain").addEventListener("click", retrain);
    $("#rollback-all").addEventListener("click", () => rollback(null));
  }

  const finished = sessionStorage.getItem("models-finished-run");
  if (finished) {
    sessionStorage.removeItem("models-finished-run");
    message(`Run ${finished} finished.`);
  }
  // Curves of the active pair model (else the newest version) right away.
  const first = document.querySelector('section[data-kind="siamese"] tr.active-row .show-curves') ||
    document.querySelector('section[data-kind="siamese"] .show-curves');
  if (first) showCurves(first.dataset.version);
  poll();
})();
