// Time-series line charts in plain SVG: axes with readable ticks, gaps where data is
// missing, and a hover cursor with a tooltip giving the time and every line's value.
"use strict";

const WardenChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const H = 220;
  const M = { left: 46, right: 12, top: 10, bottom: 24 };
  const MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;
  const STEPS = [MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
    2 * DAY];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  // 1, 2, 2.5 or 5 times a power of ten: about `count` ticks from 0 to at least `max`.
  function niceStep(max, count) {
    const raw = max / count;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function fmtValue(v, unit) {
    const a = Math.abs(v);
    const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
    return unit ? `${s} ${unit}` : s;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtTick(ms, step) {
    const d = new Date(ms);
    if (step >= DAY) return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" });
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return d.getHours() === 0 && d.getMinutes() === 0 && step >= HOUR
      ? d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" }) : hm;
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return `${d.toLocaleDateString()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // Index of the point nearest to time t (points sorted by time).
  function nearest(points, t) {
    let lo = 0, hi = points.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] < t) lo = mid; else hi = mid;
    }
    return Math.abs(points[lo][0] - t) <= Math.abs(points[hi][0] - t) ? lo : hi;
  }

  // The usual spacing of a series' points; a jump of more than 3x it is a gap, drawn as one.
  function gapLimit(points) {
    const d = [];
    for (let i = 1; i < points.length; i++) d.push(points[i][0] - points[i - 1][0]);
    if (!d.length) return Infinity;
    d.sort((a, b) => a - b);
    return Math.max(3 * d[d.length >> 1], 3 * MIN);
  }

  function render(container, data) {
    container.textContent = "";
    const W = Math.max(320, container.clientWidth || 480);
    const series = data.series.filter((s) => s.points.length);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": data.metric }, container);
    const x0 = data.from, x1 = data.to;
    let ymax = data.ymax;
    if (!ymax) {
      let m = 0;
      for (const s of series) for (const p of s.points) m = Math.max(m, p[1]);
      ymax = m > 0 ? m * 1.1 : 1;
    }
    const ystep = niceStep(ymax, 4);
    ymax = Math.ceil(ymax / ystep - 1e-9) * ystep;
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const X = (t) => M.left + ((t - x0) / (x1 - x0)) * pw;
    const Y = (v) => M.top + ph - (Math.min(v, ymax) / ymax) * ph;

    const grid = el("g", { class: "grid" }, svg);
    const axis = el("g", { class: "axis" }, svg);
    for (let v = 0; v <= ymax + 1e-9; v += ystep) {
      const y = Y(v).toFixed(1);
      el("line", { x1: M.left, x2: W - M.right, y1: y, y2: y }, grid);
      const t = el("text", { x: M.left - 6, y: Number(y) + 4, "text-anchor": "end" }, axis);
      const digits = ystep >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(ystep) - 1e-9));
      t.textContent = v.toFixed(digits) + (data.unit === "%" ? "%" : "");
    }
    const span = x1 - x0;
    const step = STEPS.find((s) => span / s <= Math.max(3, Math.floor(pw / 90))) || 7 * DAY;
    const offset = new Date().getTimezoneOffset() * MIN;  // ticks on local whole hours/days
    for (let t = Math.ceil((x0 - offset) / step) * step + offset; t <= x1; t += step) {
      const x = X(t).toFixed(1);
      el("line", { x1: x, x2: x, y1: M.top + ph, y2: M.top + ph + 4 }, axis);
      const label = el("text", { x, y: H - 6, "text-anchor": "middle" }, axis);
      label.textContent = fmtTick(t, step);
    }
    el("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }, axis);

    series.forEach((s, i) => {
      const limit = gapLimit(s.points);
      let d = "";
      s.points.forEach((p, j) => {
        const cmd = j === 0 || p[0] - s.points[j - 1][0] > limit ? "M" : "L";
        d += `${cmd}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`;
      });
      el("path", { d, class: `line ser${i % 8}`, "data-label": s.label }, svg);
      if (s.points.length === 1) {
        el("circle", { cx: X(s.points[0][0]), cy: Y(s.points[0][1]), r: 2.5, class: `ser${i % 8}` }, svg);
      }
    });

    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = `sw ser${i % 8}`;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(s.label));
      legend.appendChild(item);
    });
    container.appendChild(legend);
    if (!series.length) {
      const nd = document.createElement("div");
      nd.className = "nodata";
      nd.textContent = "No data in this range.";
      container.appendChild(nd);
      return;
    }

    // Hover: a cursor at the nearest sample and a tooltip listing each line's value there.
    const cursor = el("line", { class: "cursor", y1: M.top, y2: M.top + ph, visibility: "hidden" }, svg);
    const dots = series.map((s, i) => el("circle", { r: 3.5, class: `dot ser${i % 8}`, visibility: "hidden" }, svg));
    const overlay = el("rect", { class: "overlay", x: M.left, y: M.top, width: pw, height: ph }, svg);
    const tip = document.createElement("div");
    tip.className = "tooltip";
    tip.hidden = true;
    container.appendChild(tip);

    function move(ev) {
      const box = svg.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * W;
      const t = x0 + ((px - M.left) / pw) * (x1 - x0);
      let best = null;
      series.forEach((s) => {
        const p = s.points[nearest(s.points, t)];
        if (best === null || Math.abs(p[0] - t) < Math.abs(best - t)) best = p[0];
      });
      tip.textContent = "";
      const head = document.createElement("div");
      head.className = "tt-time";
      head.textContent = fmtTime(best);
      tip.appendChild(head);
      series.forEach((s, i) => {
        const p = s.points[nearest(s.points, best)];
        const close = Math.abs(p[0] - best) <= gapLimit(s.points);
        dots[i].setAttribute("visibility", close ? "visible" : "hidden");
        if (!close) return;
        dots[i].setAttribute("cx", X(p[0]));
        dots[i].setAttribute("cy", Y(p[1]));
        const row = document.createElement("div");
        row.className = "tt-row";
        const sw = document.createElement("span");
        sw.className = `sw ser${i % 8}`;
        row.appendChild(sw);
        row.appendChild(document.createTextNode(`${s.label}: ${fmtValue(p[1], data.unit)}`));
        tip.appendChild(row);
      });
      const cx = X(best);
      cursor.setAttribute("x1", cx);
      cursor.setAttribute("x2", cx);
      cursor.setAttribute("visibility", "visible");
      tip.hidden = false;
      const scale = box.width / W;
      const left = cx * scale + 12;
      tip.style.left = (left + tip.offsetWidth > box.width ? cx * scale - tip.offsetWidth - 12 : left) + "px";
      tip.style.top = M.top * scale + 4 + "px";
    }
    function leave() {
      tip.hidden = true;
      cursor.setAttribute("visibility", "hidden");
      dots.forEach((d) => d.setAttribute("visibility", "hidden"));
    }
    overlay.addEventListener("mousemove", move);
    overlay.addEventListener("mouseleave", leave);
  }

  return { render };
})();
