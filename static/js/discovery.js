/* Discovery pages: the product page's three lists (loaded as JSON) and search by photo.
   Uses Curation.api / Curation.setProgress from app.js; no third-party code. */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function card(item) {
    const a = el("a", { class: "thumb", href: item.url, "data-sku": item.sku });
    if (item.image_url) a.appendChild(el("img", { src: item.image_url, alt: item.title, loading: "lazy" }));
    a.appendChild(el("div", {}, item.title));
    a.appendChild(el("div", { class: "muted" }, item.sku + " · " + item.category));
    const tail = [];
    if (typeof item.score === "number") tail.push("score " + item.score.toFixed(3));
    if (!item.in_stock) tail.push("out of stock");
    if (tail.length) a.appendChild(el("div", { class: "muted", "data-role": "score" }, tail.join(" · ")));
    return a;
  }

  function fill(container, items) {
    container.replaceChildren(...items.map(card));
  }

  function part(section, role) {
    return section.querySelector(`[data-role="${role}"]`);
  }

  function showMessage(section, text) {
    const m = part(section, "message");
    m.textContent = text || "";
    m.classList.toggle("hidden", !text);
  }

  async function loadList(section) {
    const toggle = part(section, "include-out-of-stock");
    let url = section.dataset.url;
    if (toggle && toggle.checked) url += (url.includes("?") ? "&" : "?") + "in_stock=0";
    showMessage(section, "Loading…");
    try {
      const data = await Curation.api(url);
      part(section, "version").textContent = data.model_version ? `Embeddings version ${data.model_version}` : "";
      fill(part(section, "items"), data.results);
      showMessage(section, data.message);
      section.dataset.loaded = "1";
    } catch (err) {
      showMessage(section, "Could not load this list: " + err.message);
      section.dataset.loaded = "error";
    }
  }

  async function loadComplete(section) {
    try {
      const data = await Curation.api(section.dataset.url);
      const versions = [];
      if (data.pair_model_version) versions.push(`pair model version ${data.pair_model_version}`);
      if (data.outfit_model_version) versions.push(`outfit scorer version ${data.outfit_model_version}`);
      part(section, "version").textContent = versions.length ? "From " + versions.join(", ") : "";
      const slots = part(section, "slots");
      slots.replaceChildren(
        ...data.slots.map((slot) => {
          const box = el("div", { class: "slot", "data-slot": slot.slot });
          box.appendChild(el("h3", {}, slot.slot));
          const thumbs = el("div", { class: "thumbs" });
          fill(thumbs, slot.results);
          box.appendChild(thumbs);
          return box;
        })
      );
      showMessage(section, data.message);
      const outfit = part(section, "outfit");
      if (data.outfit) {
        fill(part(section, "outfit-items"), data.outfit.items);
        part(section, "outfit-score").textContent = "outfit score " + data.outfit.score.toFixed(3);
        outfit.classList.remove("hidden");
      }
      part(section, "outfit-message").textContent = data.outfit_message || "";
      section.dataset.loaded = "1";
    } catch (err) {
      showMessage(section, "Could not load complete-the-look: " + err.message);
      section.dataset.loaded = "error";
    }
  }

  /* XMLHttpRequest rather than fetch: it reports upload progress for the bar. */
  function upload(url, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", Curation.cookie("csrftoken"));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
      xhr.onerror = () => reject(new Error("The upload failed: check the connection and try again."));
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
        let message = (data && data.detail) || "";
        if (!message && data && typeof data === "object") {
          message = Object.entries(data).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; ");
        }
        if (!message && xhr.status === 413) message = "The photo is too large.";
        reject(new Error(message || `The search failed (HTTP ${xhr.status}).`));
      };
      xhr.send(formData);
    });
  }

  function initSearch(form) {
    const results = document.getElementById("photo-results");
    const error = part(form, "error");
    const progress = part(form, "progress");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.classList.add("hidden");
      const file = form.querySelector("input[type=file]").files[0];
      const maxBytes = Number(form.dataset.maxBytes);
      if (file && file.size > maxBytes) {
        error.textContent = `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${(maxBytes / 1048576).toFixed(1)} MB.`;
        error.classList.remove("hidden");
        return;
      }
      button.disabled = true;
      progress.classList.remove("hidden");
      Curation.setProgress(progress, 0, 1);
      showMessage(results, "Searching…");
      try {
        const data = await upload(form.dataset.searchUrl, new FormData(form), (done, total) => Curation.setProgress(progress, done, total));
        Curation.setProgress(progress, 1, 1);
        part(results, "version").textContent = `Embeddings version ${data.model_version}` + (data.stored ? ` · photo kept as ${data.stored}` : "");
        fill(part(results, "items"), data.results);
        showMessage(results, data.message);
        results.dataset.loaded = "1";
      } catch (err) {
        error.textContent = err.message;
        error.classList.remove("hidden");
        part(results, "items").replaceChildren();
        showMessage(results, "No results.");
      } finally {
        button.disabled = false;
        progress.classList.add("hidden");
      }
    });
  }

  document.querySelectorAll("[data-discovery-list]").forEach((section) => {
    loadList(section);
    const toggle = part(section, "include-out-of-stock");
    if (toggle) toggle.addEventListener("change", () => loadList(section));
  });
  document.querySelectorAll("[data-discovery-complete]").forEach(loadComplete);
  const form = document.getElementById("photo-search");
  if (form) initSearch(form);
})();
