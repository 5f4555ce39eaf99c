// The alerts page: when the alert feed moves, fetch the server-rendered active alerts and
// silences and swap them in (never while someone is filling in a form there).
"use strict";

(() => {
  const box = document.getElementById("alerts-live");
  if (!box) return;
  let timer = null;
  let pending = false;

  function busy() {
    return box.querySelector("details[open]") !== null || box.contains(document.activeElement);
  }

  async function refresh() {
    timer = null;
    if (busy()) { pending = true; return; }
    pending = false;
    const resp = await fetch("/alerts/live", { credentials: "same-origin" });
    if (resp.status === 401) { Warden.toLogin(); return; }
    if (!resp.ok) return;
    const html = await resp.text();
    if (busy()) { pending = true; return; }
    // Server-rendered and escaped there; scripts in it would not run under the CSP anyway.
    box.innerHTML = html;
    Warden.localTimes(box);
    Warden.refreshAges(box);
    box.dataset.updated = String(Date.now());
  }

  function soon() { if (!timer) timer = setTimeout(refresh, 250); }

  // A form was closed: catch up on what changed meanwhile.
  box.addEventListener("toggle", () => { if (pending && !busy()) soon(); }, true);
  box.addEventListener("focusout", () => setTimeout(() => { if (pending && !busy()) soon(); }, 0));
  Warden.stream({ alert: soon });
})();
