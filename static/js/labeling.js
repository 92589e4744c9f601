/* The labeling widget (#labeler), shared by /pairs/label/ and /crowd/label/.
   Configured by data attributes: data-next-url, data-submit-url, data-skip-url, data-undo-url and
   data-blind ("1" hides a pair's source and model score). Speaks the labeling JSON of
   docs/contracts.md through Curation.api (static/js/app.js).

   Speed: the server reserves the pair on screen and the next one ("prefetch"); their images are
   loaded in the background, so a decision swaps to the next pair at once and the requests run
   after, in order. data-swap-ms on #labeler records how long the last swap took (to paint). */
(function () {
  "use strict";
  const root = document.getElementById("labeler");
  if (!root) return;

  const cfg = {
    next: root.dataset.nextUrl,
    submit: root.dataset.submitUrl,
    skip: root.dataset.skipUrl,
    undo: root.dataset.undoUrl,
    blind: root.dataset.blind === "1",
  };
  const $ = (sel) => root.querySelector(sel);
  const $$ = (sel) => Array.from(root.querySelectorAll(sel));
  const SOURCE_TEXT = {
    similar: "Similar to a pair already known to go together",
    uncertain: "The model is unsure about this pair",
    exploration: "A random pair, so the model's blind spots get labels",
    escalated: "The crowd could not agree on this pair",
    manual: "Added by hand",
  };

  let current = null; // the pair on screen
  let prefetch = null; // the next pair, images already requested
  let shownAt = 0;
  let chain = Promise.resolve(); // requests run one after the other, in the order of the keys
  let issued = 0; // operations queued so far; a "next" answer steers the screen only if it is the latest
  let finished = 0;
  let busyUndo = false;
  const preloaded = new Map();

  function setStatus(text, isError) {
    const el = $(".lab-status");
    el.textContent = text || "";
    el.classList.toggle("error", !!isError);
  }

  function setCounts(counts) {
    if (!counts) return;
    $('[data-count="today"]').textContent = String(counts.today);
    $('[data-count="left"]').textContent = counts.queue_left + (counts.queue_left_capped ? "+" : "");
  }

  function preload(pair) {
    if (!pair) return;
    [pair.a, pair.b].forEach((p) => {
      if (!p.image_url || preloaded.has(p.image_url)) return;
      const img = new Image();
      img.decoding = "async";
      img.src = p.image_url;
      preloaded.set(p.image_url, img);
      if (preloaded.size > 40) preloaded.delete(preloaded.keys().next().value);
    });
  }

  function fillSide(side, product) {
    const fig = $(`.lab-item[data-side="${side}"]`);
    const img = fig.querySelector("img");
    img.src = product.image_url || "";
    img.alt = product.title;
    fig.querySelector(".lab-title").textContent = product.title;
    fig.querySelector(".lab-brand").textContent = product.brand || "no brand";
    fig.querySelector(".lab-category").textContent = product.category;
    fig.querySelector(".lab-colour").textContent = product.colour || "no colour";
    fig.dataset.sku = product.sku;
  }

  function resetInputs() {
    $$('input[name="reason"]').forEach((box) => (box.checked = false));
    const note = $(".lab-note");
    if (note) note.value = "";
  }

  function render(pair) {
    current = pair;
    const why = $(".lab-why");
    if (why) why.hidden = true;
    if (!pair) {
      root.dataset.pairId = "";
      $(".lab-pair").hidden = true;
      return;
    }
    $(".lab-empty").hidden = true;
    $(".lab-pair").hidden = false;
    fillSide("a", pair.a);
    fillSide("b", pair.b);
    if (why && !cfg.blind) {
      const score = pair.model_score === null || pair.model_score === undefined ? "no model yet" : Number(pair.model_score).toFixed(2);
      why.textContent = `${SOURCE_TEXT[pair.source] || pair.source} · model score: ${score}`;
    }
    resetInputs();
    root.dataset.pairId = String(pair.id);
    root.dataset.state = "ready";
    shownAt = performance.now();
  }

  function showEmpty(reason) {
    render(null);
    const box = $(".lab-empty");
    box.querySelector(".lab-empty-text").textContent = reason || "Nothing to label right now.";
    box.hidden = false;
    root.dataset.state = "empty";
  }

  function showWaiting() {
    render(null);
    root.dataset.state = "loading";
    setStatus("Loading the next pair…");
  }

  function reconcile(data, seq) {
    setCounts(data.counts);
    if (seq !== issued) return; // a later operation is queued: its answer will steer the screen
    if (!data.pair) {
      prefetch = null;
      showEmpty(data.empty_reason);
      return;
    }
    if (!current || current.id !== data.pair.id) render(data.pair);
    prefetch = data.prefetch;
    preload(prefetch);
    setStatus("");
  }

  function enqueue(work) {
    const seq = ++issued;
    chain = chain
      .then(() => work(seq))
      .catch((err) => {
        setStatus(err.message || "Request failed", true);
        // Resynchronise with the server (the failed pair is still reserved for us).
        if (seq === issued) return loadNext(seq).catch(() => {});
      })
      .finally(() => {
        finished += 1;
      });
    return chain;
  }

  function loadNext(seq) {
    return Curation.api(cfg.next).then((data) => reconcile(data, seq));
  }

  function chosenReasons() {
    return $$('input[name="reason"]:checked').map((box) => box.value);
  }

  function advance(started) {
    const next = prefetch;
    prefetch = null;
    if (next) {
      render(next);
      recordSwap(started);
    } else {
      root.dataset.waits = String(Number(root.dataset.waits || 0) + 1);
      showWaiting();
    }
  }

  // How long from the key press until the next pair's images are decoded and painted:
  // data-swap-ms and data-swaps (read by bench/labeling_swap.py); data-waits counts decisions
  // that found no prefetched pair.
  function recordSwap(started) {
    const imgs = $$(".lab-item img").filter((img) => img.getAttribute("src"));
    Promise.all(imgs.map((img) => (img.decode ? img.decode().catch(() => null) : null))).then(() =>
      requestAnimationFrame(() => {
        root.dataset.swapMs = (performance.now() - started).toFixed(1);
        root.dataset.swaps = String(Number(root.dataset.swaps || 0) + 1);
      })
    );
  }

  function decide(value) {
    if (!current || busyUndo) return;
    const started = performance.now();
    const body = {
      pair_id: current.id,
      value: value,
      reasons: chosenReasons(),
      note: ($(".lab-note") || { value: "" }).value,
      duration_ms: Math.round(started - shownAt),
    };
    advance(started);
    enqueue((seq) =>
      Curation.api(cfg.submit, { method: "POST", json: body }).then((res) => {
        setCounts(res.counts);
        return loadNext(seq);
      })
    );
  }

  function skip() {
    if (!current || busyUndo) return;
    const started = performance.now();
    const body = { pair_id: current.id };
    advance(started);
    enqueue((seq) =>
      Curation.api(cfg.skip, { method: "POST", json: body }).then((res) => {
        setCounts(res.counts);
        return loadNext(seq);
      })
    );
  }

  function undo() {
    if (busyUndo) return;
    busyUndo = true;
    enqueue(() =>
      Curation.api(cfg.undo, { method: "POST", json: {} })
        .then((res) => {
          // The pair on screen becomes the next one; the undone pair comes back first.
          if (current) prefetch = current;
          render(res.pair);
          setCounts(res.counts);
          setStatus("Undone: decide again.");
        })
        .catch((err) => {
          if (err.status === 409) setStatus(err.message);
          else throw err;
        })
        .finally(() => {
          busyUndo = false;
        })
    );
  }

  function toggleReason(n) {
    const box = $(`input[name="reason"][data-key="${n}"]`);
    if (box) box.checked = !box.checked;
  }

  function toggleHelp(force) {
    const help = $(".lab-help");
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  function toggleWhy() {
    const why = $(".lab-why");
    if (why && current) why.hidden = !why.hidden;
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const target = ev.target;
    const typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "checkbox"));
    if (ev.key === "Escape") {
      toggleHelp(false);
      if (typing) target.blur();
      return;
    }
    if (typing) return;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    let handled = true;
    if (key === "ArrowRight" || key === "c") decide("yes");
    else if (key === "ArrowLeft" || key === "n") decide("no");
    else if (key === " " || key === "s") skip();
    else if (key === "u") undo();
    else if (key === "?") toggleHelp();
    else if (key === "i" && !cfg.blind) toggleWhy();
    else if (/^[1-9]$/.test(key)) toggleReason(key);
    else handled = false;
    if (handled) ev.preventDefault();
  });

  root.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-action]");
    if (!btn) return;
    const action = btn.dataset.action;
    btn.blur(); // so the space key skips instead of pressing the focused button again
    if (action === "yes" || action === "no") decide(action);
    else if (action === "skip") skip();
    else if (action === "undo") undo();
    else if (action === "help") toggleHelp();
    else if (action === "why") toggleWhy();
    else if (action === "reload") enqueue(loadNext);
  });

  // Someone else's reservation may expire: look again now and then while the queue is empty.
  setInterval(() => {
    if (root.dataset.state === "empty" && finished === issued) enqueue(loadNext);
  }, 30000);

  enqueue(loadNext);
})();
