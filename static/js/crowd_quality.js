/* The crowd quality page: draws the labels-per-day bar plot (Curation.barPlot) and wires the
   admins' "Reinstate" buttons to POST /api/crowd/workers/<id>/reinstate/. */
(function () {
  "use strict";

  function drawLabelsPerDay() {
    const holder = document.getElementById("labels-per-day");
    const source = document.getElementById("labels-per-day-data");
    if (!holder || !source) return;
    const days = JSON.parse(source.textContent);
    if (!days.length) {
      holder.textContent = "No crowd labels yet.";
      return;
    }
    const bars = days.map((d) => ({ label: d.day, value: d.count }));
    const width = Math.max(320, Math.min(900, 40 + bars.length * 24));
    const svg = Curation.barPlot(bars, { width: width, height: 200 });
    svg.setAttribute("aria-label", "Crowd labels per day");
    svg.setAttribute("data-testid", "labels-per-day-plot");
    holder.appendChild(svg);
    const caption = document.createElement("p");
    caption.className = "muted";
    const total = days.reduce((sum, d) => sum + d.count, 0);
    caption.textContent = `${total} labels over ${days.length} day(s), ${days[0].day} to ${days[days.length - 1].day}.`;
    holder.appendChild(caption);
  }

  function wireReinstate() {
    const config = document.getElementById("crowd-quality");
    const status = document.getElementById("reinstate-status");
    if (!config) return;
    document.querySelectorAll("[data-reinstate]").forEach((button) => {
      button.addEventListener("click", async () => {
        const url = config.dataset.reinstateUrl.replace("{id}", button.dataset.reinstate);
        button.disabled = true;
        try {
          const worker = await Curation.api(url, { method: "POST", json: {} });
          status.textContent = `${worker.username} is active again; their votes count from now on.`;
          const row = button.closest("tr");
          row.classList.remove("suspended");
          row.children[1].textContent = worker.status;
          button.remove();
        } catch (err) {
          status.textContent = err.message;
          button.disabled = false;
        }
      });
    });
  }

  drawLabelsPerDay();
  wireReinstate();
})();
