"""A plain server-rendered overview of the hosts at `/`: who reports, when, and the
headline figures. The machine-room dashboard proper is built on the same JSON API."""

from __future__ import annotations

import html
import time

from warden.collector.store.base import Host, SeriesPoints

_HEADLINE = (("system_cpu_percent", "CPU %", None),
             ("system_memory_used_percent", "Memory %", None),
             ("system_filesystem_used_percent", "Root fs %", ("mount", "/")),
             ("system_load1", "Load 1m", None))


def _pick(latest: list[SeriesPoints], name: str, label: tuple[str, str] | None) -> str:
    for s in latest:
        if s.name == name and s.points and (label is None or s.labels.get(label[0]) == label[1]):
            return f"{s.points[-1][1]:.1f}"
    return "–"


def _ago(ns: int, now_ns: int) -> str:
    if not ns:
        return "never"
    s = max(0, (now_ns - ns) // 10**9)
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def render(hosts: list[tuple[Host, list[SeriesPoints]]], now_ns: int | None = None) -> str:
    now_ns = now_ns or time.time_ns()
    e = html.escape
    rows = []
    for h, latest in hosts:
        state = "revoked" if h.revoked else ("stale" if now_ns - h.last_seen_ns > 120 * 10**9 else "ok")
        cells = "".join(f"<td class=num>{_pick(latest, n, lab)}</td>" for n, _, lab in _HEADLINE)
        labels = " ".join(f"{e(k)}={e(v)}" for k, v in sorted(h.labels.items()))
        rows.append(
            f'<tr class="{state}"><td><a href="/api/v1/hosts/{e(h.host_id)}">{e(h.host_id)}</a></td>'
            f"<td>{state}</td><td>{_ago(h.last_seen_ns, now_ns)}</td><td>{e(h.os or '–')}</td>"
            f"<td>{e(h.agent_version or '–')}</td><td>{labels}</td>{cells}</tr>")
    head = "".join(f"<th>{t}</th>" for t in ("Host", "State", "Last seen", "OS", "Agent", "Labels"))
    head += "".join(f"<th>{t}</th>" for _, t, _ in _HEADLINE)
    body = "\n".join(rows) or f'<tr><td colspan="{6 + len(_HEADLINE)}">No hosts enrolled yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Warden — hosts</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .3em .8em; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.stale td {{ color: #a60; }} tr.revoked td {{ color: #999; text-decoration: line-through; }}
</style></head>
<body><h1>Warden</h1>
<p>{len(hosts)} host(s). <a href="/healthz">health</a> · <a href="/metrics">metrics</a></p>
<table id="hosts"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table></body></html>
"""
