// The host page: load the history charts for the chosen time range, refresh them now and then.
"use strict";

(() => {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const host = charts.dataset.host;
  let range = "1h";
  let seq = 0;

  async function load() {
    const mine = ++seq;  // a late answer for an older range must not overwrite a newer one
    for (const fig of charts.querySelectorAll("figure.chart")) {
      const plot = fig.querySelector(".plot");
      const url = `/api/hosts/${encodeURIComponent(host)}/series?metric=${fig.dataset.metric}&range=${range}`;
      try {
        const resp = await fetch(url, { credentials: "same-origin" });
        if (resp.status === 401) { Warden.toLogin(); return; }
        const data = await resp.json();
        if (mine !== seq) return;
        WardenChart.render(plot, data);
        fig.dataset.loaded = range;
      } catch (e) {
        plot.textContent = "Could not load the chart.";
      }
    }
  }

  for (const b of document.querySelectorAll("#ranges button[data-range]")) {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll("#ranges button")) o.classList.toggle("on", o === b);
      load();
    });
  }
  load();
  setInterval(load, 30000);
  let width = charts.clientWidth;
  window.addEventListener("resize", () => {
    if (Math.abs(charts.clientWidth - width) > 40) { width = charts.clientWidth; load(); }
  });
})();
