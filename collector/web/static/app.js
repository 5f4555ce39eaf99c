// Shared by every page: local times, relative ages, the live event stream.
"use strict";

const Warden = (() => {
  // Server clock minus ours (seconds), so ages are right even if this machine's clock is off.
  let skew = 0;

  function fmtAge(seconds) {
    // Same spelling as views.fmt_age on the server.
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 90) return s + " s";
    if (s < 90 * 60) return Math.round(s / 60) + " min";
    if (s < 48 * 3600) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function nowS() { return Date.now() / 1000 + skew; }

  function setServerNow(serverS) { skew = serverS - Date.now() / 1000; }

  function localTimes(root) {
    for (const el of (root || document).querySelectorAll("time[datetime]")) {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = d.toLocaleString();
      }
    }
  }

  function refreshAges(root) {
    for (const el of (root || document).querySelectorAll(".ago[data-t]")) {
      const t = Number(el.dataset.t);
      if (t) el.textContent = fmtAge(nowS() - t) + " ago";
    }
  }

  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
  }

  // One EventSource per page; handlers: {eventName: fn(data)}. The browser reconnects by
  // itself after a dropped connection; after a refusal (the session ended, a 401) it gives
  // up, so we ask whether we are still signed in and either sign in again or reconnect.
  function stream(handlers) {
    const live = document.getElementById("live");
    const mark = (on, text) => {
      if (!live) return;
      live.classList.toggle("on", on);
      live.textContent = text;
    };
    function connect() {
      const es = new EventSource("/events/stream");
      es.onopen = () => mark(true, "● live");
      es.onerror = () => {
        mark(false, "○ reconnecting…");
        if (es.readyState !== EventSource.CLOSED) return;
        setTimeout(() => {
          fetch("/api/session", { credentials: "same-origin" })
            .then((r) => (r.status === 401 ? toLogin() : connect()))
            .catch(() => connect());
        }, 3000);
      };
      es.addEventListener("signed-out", () => { es.close(); toLogin(); });
      for (const [name, fn] of Object.entries(handlers)) {
        es.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
      }
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes();
    refreshAges();
    setInterval(() => refreshAges(), 5000);
    // A grouping choice applies at once (the form still works without JS).
    const group = document.getElementById("group");
    if (group && group.form) group.addEventListener("change", () => group.form.submit());
  });

  return { fmtAge, nowS, setServerNow, localTimes, refreshAges, stream, toLogin };
})();
