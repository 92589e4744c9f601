/* Review page: one flag at a time in the detail pane, decided with the keyboard.
   A accept · K keep · C choose (searchable picker) · ↓/N next · ↑/P previous · X select · Shift+A accept selected. */
(function () {
  "use strict";

  const root = document.getElementById("review");
  if (!root) return;
  const flags = JSON.parse(document.getElementById("flags-data").textContent);
  const pickerValues = JSON.parse(document.getElementById("picker-data").textContent);
  const byId = new Map(flags.map((f) => [f.id, f]));
  const rows = Array.from(root.querySelectorAll("tr[data-flag-id]"));
  const detail = document.getElementById("flag-detail");
  const picker = document.getElementById("picker");
  const pickerSearch = document.getElementById("picker-search");
  const pickerList = document.getElementById("picker-options");
  const bulkButton = document.getElementById("bulk-accept");
  let current = -1;
  let busy = false;
  let pickerChoices = [];
  let pickerActive = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    });
    children.forEach((c) => node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }

  function flagOf(index) { return byId.get(Number(rows[index].dataset.flagId)); }

  function showMessage(text, isError) {
    let box = document.getElementById("review-message");
    if (!box) {
      box = el("div", { id: "review-message", role: "status" });
      detail.prepend(box);
    }
    box.className = "msg " + (isError ? "error" : "success");
    box.textContent = text;
  }

  function updateStats(stats) {
    const set = (name, value) => { const b = document.querySelector(`[data-stat="${name}"]`); if (b) b.textContent = value; };
    set("open", stats.open); set("fixed", stats.fixed); set("kept", stats.kept);
    set("precision", stats.precision === null ? "–" : Math.round(stats.precision * 100) + "%");
  }

  function probabilityRow(value, probability, cls) {
    const bar = el("div", { class: "progress" }, el("div", { class: "bar" }));
    bar.querySelector(".bar").style.width = Math.round(probability * 100) + "%";
    return el("div", { class: "prob" }, el("span", { class: cls || "" , text: value }), bar, el("span", { text: Math.round(probability * 100) + "%" }));
  }

  function renderEvidence(box, evidence, flag) {
    box.replaceChildren(el("h3", { text: "Nearest visual neighbours" }));
    if (!evidence.available) {
      box.appendChild(el("p", { class: "muted", "data-testid": "no-evidence", text: evidence.reason }));
      return;
    }
    const votes = el("ul", { "data-testid": "neighbour-votes" });
    evidence.votes.forEach((v) => {
      const cls = v.value === flag.predicted_value ? "value-predicted" : v.value === flag.catalog_value ? "value-catalog" : "";
      votes.appendChild(el("li", {}, el("span", { class: cls, text: v.value }), ` × ${v.count}`));
    });
    box.appendChild(votes);
    const grid = el("div", { class: "neighbours" });
    evidence.neighbours.forEach((n) => {
      const img = el("img", { src: n.image_url, alt: n.title, loading: "lazy" });
      grid.appendChild(el("div", { class: "thumb", title: `${n.sku} · ${n.value} · ${n.score}` }, img, el("div", { text: n.value.split(" > ").pop() })));
    });
    box.appendChild(grid);
  }

  function renderDetail(flag) {
    const decided = flag.state !== "open";
    const preds = el("div", { "data-testid": "predictions" });
    flag.top_predictions.forEach((p) => preds.appendChild(
      probabilityRow(p.value, p.probability, p.value === flag.catalog_value ? "value-catalog" : p.value === flag.predicted_value ? "value-predicted" : "")));
    const buttons = el("div", { class: "actions" },
      el("button", { type: "button", class: "good", "data-action": "accept", text: "Accept prediction (A)" }),
      el("button", { type: "button", "data-action": "keep", text: "Keep catalog value (K)" }),
      el("button", { type: "button", "data-action": "choose", text: `Choose another ${flag.kind} (C)` }));
    buttons.querySelectorAll("button").forEach((b) => { b.disabled = decided; b.addEventListener("click", () => act(b.dataset.action)); });
    const evidence = el("div", { "data-testid": "evidence" }, el("p", { class: "muted", text: "Loading neighbours…" }));
    const state = decided
      ? el("p", { "data-testid": "flag-state" }, el("span", { class: "pill on", text: flag.state }), ` → ${flag.decided_value}` + (flag.decided_by ? ` by ${flag.decided_by}` : ""))
      : el("p", { "data-testid": "flag-state" }, el("span", { class: "pill", text: "open" }));
    detail.replaceChildren(
      el("div", { class: "cols" },
        el("div", {}, el("img", { class: "big", src: flag.image_url, alt: flag.title })),
        el("div", {},
          el("h2", { text: flag.title }),
          el("p", {}, el("b", { text: flag.sku }), " · ", el("a", { href: flag.history_url, text: "history" }), ` · model v${flag.model_version ?? "?"}`),
          el("p", {}, `Catalog ${flag.kind}: `, el("span", { class: "value-catalog", "data-testid": "catalog-value", text: flag.catalog_value })),
          el("p", {}, "Model predicts: ", el("span", { class: "value-predicted", "data-testid": "predicted-value", text: flag.predicted_value }), ` (${Math.round(flag.confidence * 100)}%)`),
          preds, state, buttons, evidence)));
    Curation.api(root.dataset.detailUrl.replace("{id}", flag.id))
      .then((data) => { if (flagOf(current) && flagOf(current).id === flag.id) renderEvidence(evidence, data.evidence, flag); })
      .catch((err) => { evidence.replaceChildren(el("p", { class: "error", text: "Neighbours unavailable: " + err.message })); });
  }

  function select(index) {
    if (index < 0 || index >= rows.length) return;
    if (current >= 0) rows[current].classList.remove("current");
    current = index;
    rows[current].classList.add("current");
    rows[current].scrollIntoView({ block: "nearest" });
    renderDetail(flagOf(current));
  }

  function nextOpen(from) {
    for (let i = from + 1; i < rows.length; i++) if (flagOf(i).state === "open") return i;
    for (let i = 0; i <= from && i < rows.length; i++) if (flagOf(i).state === "open") return i;
    return -1;
  }

  function markDecided(flag) {
    byId.set(flag.id, flag);
    const row = rows.find((r) => Number(r.dataset.flagId) === flag.id);
    if (!row) return;
    row.classList.add("decided");
    row.querySelector(".state").textContent = flag.state;
    const box = row.querySelector(".select-flag");
    box.checked = false; box.disabled = true;
  }

  async function decide(flag, action, value) {
    if (busy) return;
    busy = true;
    try {
      const body = { action };
      if (value !== undefined) body.value = value;
      const data = await Curation.api(root.dataset.decideUrl.replace("{id}", flag.id), { method: "POST", json: body });
      markDecided(data.flag);
      updateStats(data.stats);
      const next = nextOpen(current);
      if (next >= 0 && next !== current) select(next); else renderDetail(data.flag);
      showMessage(`${data.flag.sku}: ${data.flag.state} (${data.flag.decided_value})`, false);
    } catch (err) {
      showMessage(err.message, true);
    } finally {
      busy = false;
      updateBulk();
    }
  }

  function act(action) {
    const flag = flagOf(current);
    // While a decision is in flight the current flag is about to change: ignore keys, not queue them.
    if (busy || !flag || flag.state !== "open") return;
    if (action === "choose") openPicker(flag);
    else decide(flag, action);
  }

  /* --- searchable picker of the category tree (or colours) ------------------------------------ */
  function pickerSource(flag) {
    if (flag.kind === "category") return pickerValues.category.map((c) => ({ value: c.path, label: c.path + (c.leaf ? "" : " (group)") }));
    return pickerValues.colour.map((c) => ({ value: c, label: c }));
  }

  function renderPicker() {
    const words = pickerSearch.value.toLowerCase().split(/\s+/).filter(Boolean);
    const all = pickerSource(flagOf(current));
    pickerChoices = all.filter((c) => words.every((w) => c.label.toLowerCase().includes(w))).slice(0, 200);
    pickerActive = Math.min(pickerActive, Math.max(0, pickerChoices.length - 1));
    pickerList.replaceChildren(...pickerChoices.map((c, i) => {
      const li = el("li", { role: "option", "data-value": c.value, text: c.label });
      if (i === pickerActive) li.classList.add("active");
      li.addEventListener("click", () => choose(c.value));
      return li;
    }));
    const active = pickerList.querySelector(".active");
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  function openPicker(flag) {
    document.getElementById("picker-title").textContent = `Choose the ${flag.kind} of ${flag.sku} (now ${flag.catalog_value})`;
    picker.classList.remove("hidden");
    pickerSearch.value = "";
    pickerActive = 0;
    renderPicker();
    pickerSearch.focus();
  }

  function closePicker() { picker.classList.add("hidden"); pickerSearch.blur(); }

  function choose(value) {
    closePicker();
    decide(flagOf(current), "choose", value);
  }

  pickerSearch.addEventListener("input", () => { pickerActive = 0; renderPicker(); });
  pickerSearch.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { pickerActive = Math.min(pickerActive + 1, pickerChoices.length - 1); renderPicker(); e.preventDefault(); }
    else if (e.key === "ArrowUp") { pickerActive = Math.max(pickerActive - 1, 0); renderPicker(); e.preventDefault(); }
    else if (e.key === "Enter") { if (pickerChoices[pickerActive]) choose(pickerChoices[pickerActive].value); e.preventDefault(); }
    else if (e.key === "Escape") { closePicker(); e.preventDefault(); }
    e.stopPropagation();
  });
  document.getElementById("picker-cancel").addEventListener("click", closePicker);

  /* --- selection and bulk accept ------------------------------------------------------------- */
  function selectedIds() {
    return rows.filter((r) => r.querySelector(".select-flag").checked).map((r) => Number(r.dataset.flagId));
  }

  function updateBulk() {
    const n = selectedIds().length;
    document.getElementById("selected-count").textContent = n;
    bulkButton.disabled = n === 0 || busy;
  }

  async function bulkAccept() {
    const ids = selectedIds();
    if (!ids.length || busy) return;
    if (!window.confirm(`Accept the model's prediction for ${ids.length} product(s)?`)) return;
    busy = true;
    try {
      const data = await Curation.api(root.dataset.bulkUrl, { method: "POST", json: { flag_ids: ids, action: "accept" } });
      data.flags.forEach(markDecided);
      updateStats(data.stats);
      document.getElementById("select-all").checked = false;
      const next = flagOf(current).state === "open" ? current : nextOpen(current);
      if (next >= 0) select(next); else renderDetail(flagOf(current));
      showMessage(`Accepted ${data.decided} prediction(s).`, false);
    } catch (err) {
      showMessage(err.message, true);
    } finally {
      busy = false;
      updateBulk();
    }
  }

  rows.forEach((row, i) => {
    row.addEventListener("click", (e) => { if (!e.target.classList.contains("select-flag")) select(i); });
    row.querySelector(".select-flag").addEventListener("change", updateBulk);
  });
  document.getElementById("select-all").addEventListener("change", (e) => {
    rows.forEach((r) => { const box = r.querySelector(".select-flag"); if (!box.disabled) box.checked = e.target.checked; });
    updateBulk();
  });
  bulkButton.addEventListener("click", bulkAccept);

  document.addEventListener("keydown", (e) => {
    if (!picker.classList.contains("hidden")) return;
    const tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" && e.target.type !== "checkbox" || tag === "select" || tag === "textarea") return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key;
    if (key === "A" && e.shiftKey) { bulkAccept(); }
    else if (key === "a") act("accept");
    else if (key === "k" || key === "K") act("keep");
    else if (key === "c" || key === "C") act("choose");
    else if (key === "ArrowDown" || key === "n" || key === "N") select(Math.min(current + 1, rows.length - 1));
    else if (key === "ArrowUp" || key === "p" || key === "P") select(Math.max(current - 1, 0));
    else if (key === "x" || key === "X") {
      const box = rows[current].querySelector(".select-flag");
      if (!box.disabled) { box.checked = !box.checked; updateBulk(); }
    } else return;
    e.preventDefault();
  });

  select(0);
})();
