"""The incident write-up: `warden-collector incident report ALERT_ID` (Markdown).

The department's rule after an outage is "report cause and impact". This assembles the
facts so the write-up starts from evidence rather than memory: the alert's own timeline
(pending, firing, acknowledged, resolved: who and when), the host's other alerts in the
same period, the host's events of warning severity and above around it, and the key
metrics (first / min / max / last) over the period. Cause and follow-up actions are left
as headed sections for the people who know them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from warden.collector.alerts.store import AlertStore
from warden.collector.store.base import Store

NS = 1_000_000_000
_SEVERE = {"warning", "error", "critical"}
# Key metrics of a host, and the label that ties a series to the alert when present.
_METRICS = ("system_cpu_percent", "system_memory_used_percent", "system_swap_used_percent",
            "system_filesystem_used_percent", "system_filesystem_inodes_used_percent",
            "disk_filesystem_days_to_full", "disk_temperature_celsius", "backup_newest_age_seconds",
            "updates_security_pending")
MAX_EVENTS = 200


def _t(ns: int | None) -> str:
    if not ns:
        return "—"
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _dur(ns: int) -> str:
    s = max(0, ns // NS)
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:300]


def render_report(alerts: AlertStore, store: Store, alert_id: int, before_s: int = 3600,
                  after_s: int = 1800, now_ns: int | None = None) -> str:
    """Markdown for one alert occurrence; KeyError for an unknown id."""
    a = alerts.alert(alert_id)
    if a is None:
        raise KeyError(alert_id)
    now_ns = now_ns if now_ns is not None else dt.datetime.now(dt.UTC).timestamp() * NS
    now_ns = int(now_ns)
    p = a.payload()
    host = p["labels"].get("host", "")
    start = p["starts_ns"]
    end = p["ends_ns"] or now_ns
    lo, hi = start - before_s * NS, end + after_s * NS
    summary = p["annotations"].get("summary") or p["rule"]
    lines = [f"# Incident report: {summary}", ""]
    state = "resolved" if p["ends_ns"] else f"still {p['state']}"
    lines += [
        f"Alert {p['id']} (`{p['rule']}`, {p['severity']}) on **{host or 'no host'}**, {state}.",
        "",
        "| | |", "|---|---|",
        f"| Condition started | {_t(start)} |",
        f"| Fired | {_t(p['fired_ns'])} |",
        f"| Resolved | {_t(p['ends_ns'])} |",
        f"| Duration | {_dur(end - (p['fired_ns'] or start))}{'' if p['ends_ns'] else ' (so far)'} |",
        f"| Acknowledged | {_ack(p)} |",
        f"| Labels | {_cell(', '.join(f'{k}={v}' for k, v in sorted(p['labels'].items())))} |",
        f"| Fingerprint | `{p['fingerprint']}` |",
    ]
    if p["annotations"].get("description"):
        lines += ["", f"> {p['annotations']['description']}"]

    # The timeline: the alert's own history, other alerts of the host, severe events.
    rows: list[tuple[int, str, str]] = []
    for h in alerts.history(alert_id):
        who = f" by {h['actor']}" if h.get("actor") else ""
        detail = f": {h['detail']}" if h.get("detail") else ""
        rows.append((h["at_ns"], "this alert", f"{h['what']}{who}{detail}"))
    others = [o for o in alerts.alerts_between(lo, hi, 500, host or None, None) if o.id != alert_id]
    for o in others:
        op = o.payload()
        what = op["annotations"].get("summary") or op["rule"]
        rows.append((op["fired_ns"] or op["starts_ns"], f"alert {op['id']}",
                     f"{op['severity']} fired: {what}"))
        if op["ends_ns"] and op["ends_ns"] <= hi:
            rows.append((op["ends_ns"], f"alert {op['id']}", f"resolved: {what}"))
    events = []
    if host:
        events = [e for e in store.events(host, lo, 5000) if e.event.time_ns <= hi
                  and (e.event.severity in _SEVERE or e.event.kind.startswith(("system.", "register.")))]
    events.sort(key=lambda e: e.event.time_ns)
    shown = events[:MAX_EVENTS]
    for e in shown:
        ev = e.event
        text = ev.raw or ", ".join(f"{k}={v}" for k, v in sorted(ev.fields.items()))
        rows.append((ev.time_ns, f"event {ev.kind}", f"{ev.severity}: {text}"))
    rows.sort(key=lambda r: r[0])
    lines += ["", f"## Timeline ({_t(lo)} to {_t(hi)})", ""]
    if rows:
        lines += ["| Time (UTC) | Source | What |", "|---|---|---|"]
        lines += [f"| {_t(t)} | {_cell(src)} | {_cell(what)} |" for t, src, what in rows]
        if len(events) > MAX_EVENTS:
            lines.append(f"\n{len(events) - MAX_EVENTS} more events not shown.")
    else:
        lines.append("Nothing recorded in this period.")

    # Metrics over the period: the evidence of impact.
    lines += ["", "## Metrics", ""]
    metric_rows = []
    if host:
        for name in _METRICS:
            for s in store.query_metrics(host, name, lo, hi):
                if not s.points or not _related(s.labels, p["labels"]):
                    continue
                vals = [v for _, v in s.points]
                lbl = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                metric_rows.append(f"| {name}{'{' + lbl + '}' if lbl else ''} | {vals[0]:.6g} | "
                                   f"{min(vals):.6g} | {max(vals):.6g} | {vals[-1]:.6g} | {len(vals)} |")
    if metric_rows:
        lines += ["| Series | First | Min | Max | Last | Samples |", "|---|---:|---:|---:|---:|---:|"]
        lines += metric_rows
    else:
        lines.append("No stored samples of the key metrics in this period.")

    lines += ["", "## Impact", "",
              f"- {host or 'The fleet'}: `{p['rule']}` held for {_dur(end - start)}"
              f"{'' if p['ends_ns'] else ' so far'}.",
              f"- Other alerts on this host in the period: {len(others)}."
              + ("" if not others else " " + ", ".join(sorted({o.rule_id for o in others}))),
              "- Services and users affected: _to be completed_", "",
              "## Cause", "", "_To be completed: what happened and why._", "",
              "## Actions", "", "- _To be completed: what was done, and what will prevent a recurrence._", ""]
    return "\n".join(lines)


def _ack(p: dict[str, Any]) -> str:
    ack = p.get("acknowledged")
    if not ack:
        return "no"
    comment = f" ({ack['comment']})" if ack.get("comment") else ""
    return f"by {ack['by']} at {_t(ack.get('at_ns'))}{comment}"


def _related(series_labels: dict[str, str], alert_labels: dict[str, str]) -> bool:
    """A series belongs to the alert unless they disagree on a shared label (mount, device)."""
    return all(alert_labels.get(k, v) == v for k, v in series_labels.items() if k in ("mount", "device"))
