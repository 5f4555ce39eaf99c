// The overview grid: filtering, and live tile updates from the event stream (no reload).
"use strict";

(() => {
  const STALE_BACKUP_S = 26 * 3600;
  const SEEN_STALE_S = 120;
  const ORDER = ["silent", "critical", "warning", "info", "ok"];
  const groups = document.getElementById("groups");
  if (!groups) return;
  Warden.setServerNow(Number(groups.dataset.now));
  const tiles = new Map();
  for (const el of groups.querySelectorAll(".tile[data-h]")) tiles.set(el.dataset.h, el);
  const q = document.getElementById("q");
  const sev = document.getElementById("sev");
  const notice = document.getElementById("notice");

  function ageClass(age, warn, crit) {
    if (age === null) return "";
    return age > crit ? "crit" : age > warn ? "warn" : "";
  }

  function part(el, key) { return el.querySelector(`[data-k="${key}"]`); }

  function setText(node, text, cls) {
    if (node.textContent !== text) node.textContent = text;
    node.classList.remove("warn", "crit");
    if (cls) node.classList.add(cls);
  }

  // Ages move with the clock: recomputed here from the epoch seconds in data-t.
  function refreshTile(el) {
    const now = Warden.nowS();
    const b = part(el, "b");
    const bt = b.dataset.t ? Number(b.dataset.t) : null;
    const bAge = bt === null ? null : now - bt;
    setText(b, bAge === null ? "backup —" : "backup " + Warden.fmtAge(bAge),
      ageClass(bAge, STALE_BACKUP_S - 7200, STALE_BACKUP_S));
    const s = part(el, "seen");
    const sAge = now - Number(s.dataset.t);
    setText(s, "seen " + Warden.fmtAge(sAge) + " ago", ageClass(sAge, SEEN_STALE_S, 10 * SEEN_STALE_S));
  }

  function patch(st) {
    const el = tiles.get(st.h);
    if (!el) return false;
    for (const c of ORDER) el.classList.remove("s-" + c);
    el.classList.add("s-" + st.s);
    el.dataset.s = st.s;
    part(el, "n").textContent = st.n ? String(st.n) : "";
    setText(part(el, "d"), st.d, st.dc);
    setText(part(el, "p"), st.p, st.pc);
    const b = part(el, "b");
    b.dataset.t = st.b === null ? "" : String(st.b);
    b.title = st.bs || "";
    part(el, "seen").dataset.t = String(st.seen);
    refreshTile(el);
    return true;
  }

  function recount() {
    const counts = Object.fromEntries(ORDER.map((c) => [c, 0]));
    for (const el of tiles.values()) counts[el.dataset.s] = (counts[el.dataset.s] || 0) + 1;
    for (const el of document.querySelectorAll("#counts [data-c]")) {
      el.textContent = counts[el.dataset.c] + " " + el.dataset.c;
    }
  }

  function applyFilter() {
    const words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    const want = sev.value;
    for (const el of tiles.values()) {
      const s = el.dataset.s;
      const sevOk = !want || (want === "problem" ? s !== "ok" : s === want);
      const textOk = words.every((w) => el.dataset.q.includes(w));
      el.hidden = !(sevOk && textOk);
    }
    for (const g of groups.querySelectorAll(".group")) {
      g.hidden = !g.querySelector(".tile:not([hidden])");
    }
    // Keep the filter across reloads and grouping changes.
    sessionStorage.setItem("warden.filter", JSON.stringify({ q: q.value, sev: sev.value }));
  }

  function showNotice(text) {
    notice.hidden = false;
    notice.textContent = text + " ";
    const a = document.createElement("a");
    a.href = window.location.pathname + window.location.search;
    a.textContent = "Reload";
    notice.appendChild(a);
  }

  try {
    const saved = JSON.parse(sessionStorage.getItem("warden.filter") || "{}");
    if (saved.q) q.value = saved.q;
    if (saved.sev !== undefined) sev.value = saved.sev;
  } catch (e) { /* a bad saved filter is no filter */ }
  q.addEventListener("input", applyFilter);
  sev.addEventListener("change", applyFilter);
  applyFilter();

  Warden.stream({
    tiles: (data) => {
      Warden.setServerNow(data.now);
      let unknown = 0;
      for (const st of data.tiles) if (!patch(st)) unknown += 1;
      if (unknown) showNotice(`${unknown} new host(s).`);
      recount();
      applyFilter();
    },
    hosts: (ids) => {
      const known = new Set(tiles.keys());
      const added = ids.filter((h) => !known.has(h)).length;
      const gone = [...known].filter((h) => !ids.includes(h)).length;
      if (added || gone) showNotice(`The host list changed (${added} new, ${gone} gone).`);
    },
    seen: (data) => {
      Warden.setServerNow(data.now);
      for (const [h, t] of Object.entries(data.seen)) {
        const el = tiles.get(h);
        if (el) part(el, "seen").dataset.t = String(t);
      }
      for (const el of tiles.values()) refreshTile(el);
    },
  });
  setInterval(() => { for (const el of tiles.values()) refreshTile(el); }, 5000);
})();
