/* Shared helpers for every page: CSRF-aware JSON fetch, progress bars and small SVG plots.
   No third-party code: the pages must run without a build step or a CDN. */
(function () {
  "use strict";

  function cookie(name) {
    const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }

  async function api(url, options) {
    const opts = Object.assign({ method: "GET", headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    if (opts.method !== "GET") opts.headers["X-CSRFToken"] = cookie("csrftoken");
    opts.credentials = "same-origin";
    const res = await fetch(url, opts);
    let data = null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("json")) data = await res.json();
    if (!res.ok) {
      const message = (data && (data.detail || data.error || JSON.stringify(data))) || res.statusText;
      const err = new Error(message);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  function setProgress(el, done, total) {
    const bar = el.querySelector(".bar");
    const pct = total > 0 ? Math.min(100, Math.round((100 * done) / total)) : 0;
    bar.style.width = pct + "%";
    el.setAttribute("aria-valuenow", String(pct));
    el.dataset.percent = String(pct);
  }

  /* Line plot: series = [{name, color, points:[[x,y],...]}]. Returns an <svg>. */
  function linePlot(series, opts) {
    const o = Object.assign({ width: 560, height: 220, pad: 36, yMin: null, yMax: null, xLabel: "", yLabel: "" }, opts || {});
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "plot");
    svg.setAttribute("width", o.width);
    svg.setAttribute("height", o.height);
    svg.setAttribute("viewBox", `0 0 ${o.width} ${o.height}`);
    const pts = series.flatMap((s) => s.points);
    if (!pts.length) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", o.width / 2); t.setAttribute("y", o.height / 2); t.setAttribute("text-anchor", "middle");
      t.textContent = "no data yet"; svg.appendChild(t);
      return svg;
    }
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
    const y0 = o.yMin !== null ? o.yMin : Math.min(...ys), y1r = o.yMax !== null ? o.yMax : Math.max(...ys);
    const y1 = y1r === y0 ? y0 + 1 : y1r;
    const sx = (x) => o.pad + ((x - x0) / (x1 - x0)) * (o.width - 2 * o.pad);
    const sy = (y) => o.height - o.pad - ((y - y0) / (y1 - y0)) * (o.height - 2 * o.pad);
    const axis = document.createElementNS(ns, "path");
    axis.setAttribute("d", `M${o.pad},${o.pad} V${o.height - o.pad} H${o.width - o.pad}`);
    axis.setAttribute("stroke", "#999"); axis.setAttribute("fill", "none"); svg.appendChild(axis);
    [[y0, o.height - o.pad], [y1, o.pad]].forEach(([v, y]) => {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", 2); t.setAttribute("y", y + 4); t.setAttribute("font-size", "10");
      t.textContent = Number(v).toFixed(2); svg.appendChild(t);
    });
    series.forEach((s, i) => {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
      path.setAttribute("stroke", s.color || ["#2b59c3", "#c0392b", "#1f8a4c"][i % 3]);
      path.setAttribute("fill", "none"); path.setAttribute("stroke-width", "2");
      path.setAttribute("data-series", s.name);
      svg.appendChild(path);
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", o.width - o.pad - 4); label.setAttribute("y", o.pad + 12 * (i + 1));
      label.setAttribute("text-anchor", "end"); label.setAttribute("font-size", "11");
      label.setAttribute("fill", s.color || ["#2b59c3", "#c0392b", "#1f8a4c"][i % 3]);
      label.textContent = s.name; svg.appendChild(label);
    });
    return svg;
  }

  /* Bar plot: bars = [{label, value}]. */
  function barPlot(bars, opts) {
    const o = Object.assign({ width: 560, height: 200, pad: 30 }, opts || {});
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "plot"); svg.setAttribute("width", o.width); svg.setAttribute("height", o.height);
    const max = Math.max(1, ...bars.map((b) => b.value));
    const w = (o.width - 2 * o.pad) / Math.max(1, bars.length);
    bars.forEach((b, i) => {
      const h = ((o.height - 2 * o.pad) * b.value) / max;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", o.pad + i * w + 1); r.setAttribute("y", o.height - o.pad - h);
      r.setAttribute("width", Math.max(1, w - 2)); r.setAttribute("height", h); r.setAttribute("fill", "#2b59c3");
      r.setAttribute("data-label", b.label); r.setAttribute("data-value", b.value);
      const title = document.createElementNS(ns, "title"); title.textContent = `${b.label}: ${b.value}`; r.appendChild(title);
      svg.appendChild(r);
    });
    return svg;
  }

  window.Curation = { api, cookie, setProgress, linePlot, barPlot };
})();
