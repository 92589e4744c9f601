/* The outfit builder (#outfit-builder): search products, add them as tiles, name and save.
   Speaks /api/pairs/products/ and /api/pairs/outfits/ through Curation.api (static/js/app.js). */
(function () {
  "use strict";
  const root = document.getElementById("outfit-builder");
  if (!root) return;

  const productsUrl = root.dataset.productsUrl;
  const outfitsUrl = root.dataset.outfitsUrl;
  const listUrl = root.dataset.listUrl;
  const canEdit = root.dataset.canEdit === "1";
  let outfitId = root.dataset.outfitId ? Number(root.dataset.outfitId) : null;
  const dataEl = document.getElementById("outfit-data");
  const initial = dataEl ? JSON.parse(dataEl.textContent) : null;

  const nameInput = root.querySelector('input[name="name"]');
  const itemsEl = root.querySelector(".builder-items");
  const resultsEl = root.querySelector(".builder-results");
  const statusEl = root.querySelector(".builder-status");
  const countEl = root.querySelector('[data-testid="item-count"]');
  let items = initial ? initial.items.slice() : [];
  if (initial) nameInput.value = initial.name;

  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", !!isError);
  }

  function tile(product, extra) {
    const el = document.createElement("div");
    el.className = "ptile";
    el.dataset.productId = String(product.id);
    el.dataset.sku = product.sku;
    const img = document.createElement("img");
    img.src = product.image_url || "";
    img.alt = product.title;
    img.loading = "lazy";
    const title = document.createElement("strong");
    title.textContent = product.title;
    const meta = document.createElement("span");
    meta.className = "muted";
    meta.textContent = `${product.category.split(">").pop().trim()} · ${product.colour || "no colour"}`;
    el.append(img, title, meta);
    if (extra) extra(el);
    return el;
  }

  function renderItems() {
    itemsEl.replaceChildren();
    if (!items.length) {
      const p = document.createElement("p");
      p.className = "muted builder-empty";
      p.textContent = "Search below and click a product to add it.";
      itemsEl.append(p);
    }
    items.forEach((product) => {
      itemsEl.append(
        tile(product, (el) => {
          if (!canEdit) return;
          const remove = document.createElement("button");
          remove.type = "button";
          remove.className = "remove";
          remove.title = "Remove from the outfit";
          remove.textContent = "×";
          remove.addEventListener("click", () => {
            items = items.filter((p) => p.id !== product.id);
            renderItems();
            markAdded();
          });
          el.append(remove);
        })
      );
    });
    countEl.textContent = `(${items.length})`;
  }

  function markAdded() {
    const ids = new Set(items.map((p) => p.id));
    resultsEl.querySelectorAll(".ptile").forEach((el) => el.classList.toggle("added", ids.has(Number(el.dataset.productId))));
  }

  async function search(form) {
    const params = new URLSearchParams();
    ["q", "category", "colour"].forEach((name) => {
      const v = form.elements[name].value.trim();
      if (v) params.set(name, v);
    });
    setStatus("Searching…");
    try {
      const found = await Curation.api(`${productsUrl}?${params}`);
      resultsEl.replaceChildren(
        ...found.map((product) =>
          tile(product, (el) => {
            el.title = "Add to the outfit";
            el.addEventListener("click", () => {
              if (items.some((p) => p.id === product.id)) return;
              items.push(product);
              renderItems();
              markAdded();
              setStatus(`Added ${product.title}.`);
            });
          })
        )
      );
      markAdded();
      setStatus(found.length ? `${found.length} product(s) found.` : "No product matches.");
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  function errorText(err) {
    if (err.data && typeof err.data === "object" && !err.data.detail) {
      return Object.entries(err.data)
        .map(([field, msgs]) => `${field}: ${[].concat(msgs).join(" ")}`)
        .join("; ");
    }
    return err.message;
  }

  async function save() {
    const body = { name: nameInput.value.trim(), product_ids: items.map((p) => p.id) };
    if (!body.name) return setStatus("Give the outfit a name first.", true);
    if (body.product_ids.length < 2) return setStatus("An outfit needs at least two products.", true);
    setStatus("Saving…");
    try {
      const saved = outfitId
        ? await Curation.api(`${outfitsUrl}${outfitId}/`, { method: "PUT", json: body })
        : await Curation.api(outfitsUrl, { method: "POST", json: body });
      outfitId = saved.id;
      root.dataset.outfitId = String(saved.id);
      history.replaceState(null, "", `${listUrl}${saved.id}/`);
      setStatus(`Saved “${saved.name}” with ${saved.items.length} items.`);
    } catch (err) {
      setStatus(errorText(err), true);
    }
  }

  async function remove() {
    if (!outfitId || !window.confirm("Delete this outfit?")) return;
    try {
      await Curation.api(`${outfitsUrl}${outfitId}/`, { method: "DELETE" });
      window.location.href = listUrl;
    } catch (err) {
      setStatus(errorText(err), true);
    }
  }

  const form = root.querySelector(".builder-search-form");
  if (form) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      search(form);
    });
  }
  root.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-action]");
    if (!btn) return;
    if (btn.dataset.action === "save") save();
    else if (btn.dataset.action === "delete") remove();
  });
  renderItems();
})();
