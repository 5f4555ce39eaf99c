"""HTML for the dashboard's pages, rendered on the server in one pass.

Everything that came from an agent (host names, labels, inventory strings, log lines) is
untrusted: every dynamic value goes through `esc` (html.escape, quotes included). The
pages carry no inline script or style (the Content-Security-Policy forbids both); the
behaviour is in static/*.js and keys off data-* attributes.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from warden.collector import compliance
from warden.collector.web.fleet import NS, HostFacts, PatchFacts

esc = html.escape
_LAYOUT = string.Template((Path(__file__).parent / "templates" / "layout.html").read_text())

SEVERITIES = ("critical", "warning", "info")
# Tile colours, worst first; "silent" (host_silent fires) outranks everything: the other
# alerts of a silent host are inhibited and its figures are old.
TILE_ORDER = ("silent", "critical", "warning", "info", "ok")
_SEV_CLASS = {"critical": "critical", "error": "critical", "emergency": "critical", "alert": "critical",
              "warning": "warning", "info": "info", "notice": "info"}
PREFERRED_GROUPS = ("room", "rack", "role")
# The default rule pack calls a backup stale past 26 h (a day plus the job's duration).
STALE_BACKUP_S = 26 * 3600
DISK_WARN, DISK_CRIT = 80.0, 90.0
SEEN_STALE_S = 120
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
SILENCE_DURATIONS = ("1h", "2h", "4h", "12h", "1d", "3d", "7d")


# --- formatting ---------------------------------------------------------------------------------

def fmt_age(seconds: float | None) -> str:
    """The same spelling as static/app.js's fmtAge."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} d"


def fmt_bytes(n: Any) -> str:
    try:
        v = float(n)
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} PiB"  # pragma: no cover


def iso(ns: int | None) -> str:
    if not ns:
        return ""
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def t_html(ns: int | None) -> str:
    """A <time> the browser rewrites in local time (static/app.js); UTC without JS."""
    if not ns:
        return "—"
    text = dt.datetime.fromtimestamp(ns / NS, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{iso(ns)}">{text}</time>'


def unix_html(seconds: Any) -> str:
    try:
        s = int(seconds)
    except (TypeError, ValueError):
        return "—"
    return t_html(s * NS) if s > 0 else "—"


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return esc(", ".join(str(x) for x in v)) or "—"
    if v is None or v == "":
        return "—"
    return esc(str(v))


# --- layout -----------------------------------------------------------------------------------

def page(title: str, body: str, *, user: str = "", role: str = "", csrf: str = "", active: str = "",
         scripts: Sequence[str] = ()) -> str:
    nav = ""
    if user:
        links = (("/", "Overview", "overview"), ("/alerts", "Alerts", "alerts"),
                 ("/compliance", "Compliance", "compliance"))
        nav = "".join(f'<a href="{href}"{" class=on" if key == active else ""}>{text}</a>'
                      for href, text, key in links)
        nav = (f'<nav>{nav}</nav><div class="who"><span>{esc(user)} <small>({esc(role)})</small></span>'
               f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{esc(csrf)}">'
               f'<button type="submit" class="link" id="signout">Sign out</button></form></div>')
    extra = "".join(f'\n<script src="/static/{esc(s)}" defer></script>' for s in scripts)
    return _LAYOUT.substitute(title=esc(title), nav=nav, body=body, scripts=extra, page=esc(active),
                              csrf=esc(csrf))


def login_page(csrf: str, next_url: str, user: str = "", error: str = "") -> str:
    err = f'<p class="error" id="login-error">{esc(error)}</p>' if error else ""
    body = f"""<section class="login"><h1>Warden</h1><p>Sign in to the machine-room dashboard.</p>{err}
<form method="post" action="/login" id="login">
<input type="hidden" name="csrf" value="{esc(csrf)}"><input type="hidden" name="next" value="{esc(next_url)}">
<label>User
<input name="user" id="user" autocomplete="username" value="{esc(user)}" required autofocus></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required>
</label><button type="submit">Sign in</button></form></section>"""
    return page("Sign in", body, active="login")


def error_page(status: int, message: str, user: str = "", role: str = "", csrf: str = "") -> str:
    body = (f'<section class="card"><h1>{status}</h1><p class="error">{esc(message)}</p>'
            f'<p><a href="/">Back to the overview</a></p></section>')
    return page(f"Error {status}", body, user=user, role=role, csrf=csrf)


# --- alerts → host colour ------------------------------------------------------------------------

def counts_against(a: Mapping[str, Any]) -> bool:
    """Does this alert colour its host? Firing and not muted (silenced or inhibited)."""
    return a.get("state") == "firing" and not a.get("silenced_by") and not a.get("inhibited")


def host_severity(alerts: Iterable[Mapping[str, Any]]) -> tuple[str, int]:
    """(tile colour, number of alerts that count) for one host's open alerts."""
    worst, n = "ok", 0
    for a in alerts:
        if not counts_against(a):
            continue
        n += 1
        sev = "silent" if a.get("rule") == "host_silent" else _SEV_CLASS.get(str(a.get("severity")), "info")
        if TILE_ORDER.index(sev) < TILE_ORDER.index(worst):
            worst = sev
    return worst, n


def alerts_by_host(active: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for a in active:
        out.setdefault(a.get("labels", {}).get("host", ""), []).append(a)
    return out


# --- overview ---------------------------------------------------------------------------------

def group_keys(hosts: Iterable[HostFacts]) -> list[str]:
    keys: set[str] = set()
    for h in hosts:
        keys.update(h.labels)
    return [k for k in PREFERRED_GROUPS if k in keys] + sorted(keys - set(PREFERRED_GROUPS))


def tile_state(h: HostFacts, sev: str, n: int) -> dict[str, Any]:
    """What a tile shows, as sent to the page (SSE `tiles` events) and rendered below.
    Times are sent as epoch seconds: the page formats ages itself as the clock moves."""
    if h.disk_pct is None:
        disk, dc = "disk —", ""
    else:
        disk = f"disk {h.disk_pct:.0f}% {h.disk_mount}"
        dc = "crit" if h.disk_pct >= DISK_CRIT else "warn" if h.disk_pct >= DISK_WARN else ""
    parts = []
    if h.security_pending:
        parts.append(f"{h.security_pending} security")
    elif h.updates_pending:
        parts.append(f"{h.updates_pending} update{'s' if h.updates_pending != 1 else ''}")
    if h.reboot_required:
        parts.append("reboot")
    if parts:
        patch, pc = " · ".join(parts), ("warn" if h.security_pending or h.reboot_required else "")
    elif h.security_pending is None and h.updates_pending is None and h.reboot_required is None:
        patch, pc = "patches —", ""
    else:
        patch, pc = "patched", ""
    return {"h": h.host_id, "s": sev, "n": n, "d": disk, "dc": dc,
            "b": h.backup_newest_ns // NS if h.backup_newest_ns is not None else None, "bs": h.backup_set,
            "p": patch, "pc": pc, "seen": h.last_seen_ns // NS}


def _age_class(age_s: float | None, warn: float, crit: float) -> str:
    if age_s is None:
        return ""
    return "crit" if age_s > crit else "warn" if age_s > warn else ""


def _tile_html(h: HostFacts, st: dict[str, Any], now_s: int) -> str:
    search = " ".join([h.host_id, h.hostname, *h.labels.values()]).lower()
    b_age = now_s - st["b"] if st["b"] is not None else None
    backup = f"backup {fmt_age(b_age)}" if b_age is not None else "backup —"
    seen_age = now_s - st["seen"]
    bc = _age_class(b_age, STALE_BACKUP_S - 2 * 3600, STALE_BACKUP_S)
    sc = _age_class(seen_age, SEEN_STALE_S, 10 * SEEN_STALE_S)
    hid = esc(h.host_id)
    name = h.hostname if h.hostname and h.hostname != h.host_id else ""
    return (f'<a class="tile s-{st["s"]}" href="/hosts/{quote(h.host_id)}" data-h="{hid}" data-s="{st["s"]}" '
            f'data-q="{esc(search)}"><span class="tn">{hid}</span><span class="tc" data-k="n">'
            f'{st["n"] or ""}</span>'
            f'<span class="tm {st["dc"]}" data-k="d">{esc(st["d"])}</span>'
            f'<span class="tm {bc}" data-k="b" data-t="{st["b"] if st["b"] is not None else ""}" '
            f'title="{esc(st["bs"])}">{backup}</span>'
            f'<span class="tm {st["pc"]}" data-k="p">{esc(st["p"])}</span>'
            f'<span class="tm {sc}" data-k="seen" data-t="{st["seen"]}">seen {fmt_age(seen_age)} ago</span>'
            + (f'<span class="th">{esc(name)}</span>' if name else "") + "</a>")


def overview(facts: Sequence[HostFacts], active: Sequence[Mapping[str, Any]], group: str | None,
             now_ns: int) -> tuple[str, str]:
    """(body HTML, chosen grouping key)."""
    hosts = [h for h in facts if not h.revoked]
    keys = group_keys(hosts)
    if group is None or (group and group not in keys):
        group = keys[0] if keys else ""
    by_host = alerts_by_host(active)
    now_s = now_ns // NS
    groups: dict[str, list[str]] = {}
    counts = dict.fromkeys(TILE_ORDER, 0)
    for h in hosts:
        sev, n = host_severity(by_host.get(h.host_id, ()))
        counts[sev] += 1
        groups.setdefault(h.labels.get(group, "") if group else "", []).append(
            _tile_html(h, tile_state(h, sev, n), now_s))
    options = "".join(f'<option value="{esc(k)}"{" selected" if k == group else ""}>{esc(k)}</option>'
                      for k in keys)
    options += f'<option value=""{" selected" if not group else ""}>(no grouping)</option>'
    sev_opts = "".join(f'<option value="{v}">{t}</option>' for v, t in (
        ("", "all"), ("problem", "problems only"), ("silent", "silent"), ("critical", "critical"),
        ("warning", "warning"), ("info", "info"), ("ok", "ok")))
    count_html = "".join(f'<span class="count s-{k}" data-c="{k}">{counts[k]} {k}</span>' for k in TILE_ORDER)
    sections = []
    for value in sorted(groups, key=lambda v: (v == "", v)):
        title = f"{esc(group)} = {esc(value)}" if group and value else (
            f"no {esc(group)}" if group else "all hosts")
        sections.append(f'<section class="group" data-g="{esc(value)}"><h2>{title} '
                        f'<small>{len(groups[value])}</small></h2><div class="grid">'
                        + "".join(groups[value]) + "</div></section>")
    revoked = len(facts) - len(hosts)
    empty = "" if hosts else ('<p class="empty">No hosts enrolled yet: <code>warden-collector token create'
                              '</code>, then <code>warden-agent enroll</code> on each machine.</p>')
    body = f"""<div class="toolbar">
<form method="get" action="/" id="groupform"><label>Group by
<select name="group" id="group">{options}</select>
</label><noscript><button type="submit">Apply</button></noscript></form>
<label>Search <input type="search" id="q" placeholder="host or label value" autocomplete="off"></label>
<label>Show <select id="sev">{sev_opts}</select></label>
<span id="counts">{count_html}</span><span id="live" class="live" title="live updates">○ connecting</span>
</div>
<div id="notice" class="notice" hidden></div>
<div id="groups" data-now="{now_s}" data-group="{esc(group)}">{''.join(sections)}</div>{empty}
<p class="foot">{len(hosts)} host(s){f', {revoked} revoked not shown' if revoked else ''}.
Colour: worst firing alert (silenced and inhibited alerts do not count); <b>silent</b>: no report.</p>"""
    return body, group


# --- host page ----------------------------------------------------------------------------------

def _kv(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{cells}</table>'


def _table(items: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str, Callable[[Any], str] | None]],
           limit: int = 200, empty: str = "none") -> str:
    if not items:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(t)}</th>" for _, t, _ in cols)
    rows = []
    for it in items[:limit]:
        rows.append("<tr>" + "".join(f"<td>{(fmt or _cell)(it.get(k))}</td>" for k, _, fmt in cols) + "</tr>")
    more = f'<p class="muted">… and {len(items) - limit} more</p>' if len(items) > limit else ""
    return f'<table class="list"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{more}'


def _yes(v: Any) -> str:
    return '<span class="flag warn">yes</span>' if v else "no"


def _hours(v: Any) -> str:
    try:
        return fmt_age(float(v) * 3600)
    except (TypeError, ValueError):
        return "—"


def _days(v: Any) -> str:
    try:
        d = int(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if d < 0 else f"{d} d"


def _section_os(d: Mapping[str, Any], now_ns: int) -> str:
    return _kv([("Hostname", _cell(d.get("hostname"))), ("OS", _cell(d.get("os_name"))),
                ("Version", _cell(f"{d.get('os_id', '')} {d.get('os_version', '')}".strip())),
                ("Kernel", _cell(d.get("kernel"))), ("Architecture", _cell(d.get("arch"))),
                ("Booted", unix_html(d.get("boot_time_unix"))), ("Time zone", _cell(d.get("timezone"))),
                ("Agent", _cell(d.get("agent_version")))])


def _section_hardware(d: Mapping[str, Any], now_ns: int) -> str:
    return _kv([("CPU", _cell(d.get("cpu_model"))),
                ("Cores", _cell(f"{d.get('cpu_cores_physical', '?')} physical, "
                                f"{d.get('cpu_cores_logical', '?')} logical")),
                ("Memory", fmt_bytes(d.get("memory_bytes"))), ("Swap", fmt_bytes(d.get("swap_bytes"))),
                ("Virtualization", _cell(d.get("virtualization")))]) + "<h4>Disks</h4>" + _table(
        d.get("disks") or [], [("name", "Device", None), ("model", "Model", None), ("serial", "Serial", None),
                               ("size_bytes", "Size", fmt_bytes), ("rotational", "Rotational", None),
                               ("transport", "Transport", None)])


def _section_filesystems(d: Mapping[str, Any], now_ns: int) -> str:
    return _table(d.get("filesystems") or [], [
        ("mountpoint", "Mount", None), ("device", "Device", None), ("fstype", "Type", None),
        ("total_bytes", "Size", fmt_bytes), ("read_only", "Read-only", _yes)])


def _section_network(d: Mapping[str, Any], now_ns: int) -> str:
    return _table(d.get("interfaces") or [], [
        ("name", "Interface", None), ("mac", "MAC", None), ("addresses", "Addresses", None),
        ("up", "Up", None),
        ("speed_mbps", "Speed (Mb/s)", None), ("mtu", "MTU", None)])


def _section_accounts(d: Mapping[str, Any], now_ns: int) -> str:
    users = [u for u in d.get("users") or () if u.get("login_shell") or u.get("admin") or u.get("uid") == 0]

    def last_login(v: Any) -> str:
        if v == -1 or v is None:
            return "unknown"
        return "never" if v == 0 else unix_html(v)

    return _kv([("UID 0", _cell(d.get("uid0_users"))), ("Administrators", _cell(d.get("admin_users"))),
                ("Sudoers entries", _cell(d.get("sudoers_entries"))),
                ("Shadow readable", _cell(d.get("shadow_readable")))]) + \
        "<h4>Accounts that can log in or administer</h4>" + _table(users, [
            ("name", "User", None), ("uid", "UID", None), ("shell", "Shell", None), ("admin", "Admin", _yes),
            ("locked", "Locked", None), ("empty_password", "Empty password", _yes),
            ("password_age_days", "Password age", _days), ("last_login_unix", "Last login", last_login)])


def _section_listening(d: Mapping[str, Any], now_ns: int) -> str:
    ports = sorted(d.get("ports") or [], key=lambda p: (p.get("port", 0), p.get("protocol", "")))
    return _table(ports, [("protocol", "Protocol", None), ("address", "Address", None),
                          ("port", "Port", None),
                          ("process", "Process", None), ("user", "User", None), ("pid", "PID", None)])


def _section_firewall(d: Mapping[str, Any], now_ns: int) -> str:
    active = d.get("active")
    return _kv([("Active", "yes" if active else '<span class="flag crit">no</span>')]) + _table(
        d.get("backends") or [], [("name", "Backend", None), ("present", "Present", None),
                                  ("active", "Active", None), ("rule_count", "Rules", None),
                                  ("error", "Error", None)])


def _section_antivirus(d: Mapping[str, Any], now_ns: int) -> str:
    return _kv([("Product", _cell(d.get("product"))), ("Installed", _cell(d.get("installed"))),
                ("Signatures", unix_html(d.get("signatures_time_unix"))),
                ("Signature age", _hours(d.get("signature_age_hours")))])


def _section_packages(d: Mapping[str, Any], now_ns: int) -> str:
    pkgs = d.get("packages") or []
    return _kv([("Manager", _cell(d.get("manager"))), ("Installed", _cell(d.get("count") or len(pkgs))),
                ("Content hash", f'<code>{esc(str(d.get("content_hash", ""))[:16])}</code>')])


def _section_updates(d: Mapping[str, Any], now_ns: int) -> str:
    pending = sorted(d.get("pending") or [], key=lambda u: (not u.get("security"), u.get("name", "")))
    reboot = d.get("reboot_required")
    return _kv([("Manager", _cell(d.get("manager"))), ("Pending", _cell(d.get("pending_count"))),
                ("Security", _cell(d.get("security_count"))),
                ("Last successful update", unix_html(d.get("last_update_unix"))),
                ("Kernel", _cell(f"running {d.get('running_kernel') or '?'}, newest "
                                 f"{d.get('newest_kernel') or '?'}")),
                ("Reboot required", '<span class="flag warn">yes</span> ' + _cell(
                    d.get("reboot_required_packages")) if reboot else "no"),
                ("Error", _cell(d.get("error")))]) + _table(pending, [
        ("name", "Package", None), ("current_version", "Installed", None), ("new_version", "Available", None),
        ("security", "Security", _yes), ("origin", "Origin", None)], limit=100, empty="nothing pending")


def _section_disk_health(d: Mapping[str, Any], now_ns: int) -> str:
    def passed(v: Any) -> str:
        return "passed" if v else '<span class="flag crit">FAILING</span>'

    def num(v: Any) -> str:
        return "—" if v is None or (isinstance(v, int) and v < 0) else esc(str(v))

    err = f'<p class="error">{esc(str(d["error"]))}</p>' if d.get("error") else ""
    return err + _table(d.get("devices") or [], [
        ("device", "Device", None), ("model", "Model", None), ("serial", "Serial", None),
        ("smart_passed", "SMART", passed), ("reallocated_sectors", "Reallocated", num),
        ("pending_sectors", "Pending", num), ("temperature_c", "°C", num), ("power_on_hours", "Hours", num),
        ("media_errors", "Media errors", num), ("percentage_used", "Wear %", num)])


def _section_backups(d: Mapping[str, Any], now_ns: int) -> str:
    def age(v: Any) -> str:
        if not v:
            return '<span class="flag crit">no backup</span>'
        a = now_ns / NS - int(v)
        cls = _age_class(a, STALE_BACKUP_S - 2 * 3600, STALE_BACKUP_S)
        return f'<span class="{cls}">{fmt_age(a)} ago</span>'

    return _table(d.get("sets") or [], [
        ("name", "Set", None), ("source", "Source", None), ("newest", "Newest", None),
        ("newest_time_unix", "Age", age), ("newest_size_bytes", "Size", fmt_bytes), ("count", "Count", None),
        ("offsite_present", "Off-site", None), ("verification", "Verification", None),
        ("error", "Error", None)])


def _section_time_sync(d: Mapping[str, Any], now_ns: int) -> str:
    sync = d.get("synchronized")
    return _kv([("Service", _cell(d.get("service"))),
                ("Synchronized", "yes" if sync else '<span class="flag warn">no</span>'),
                ("NTP enabled", _cell(d.get("ntp_enabled")))])


SECTIONS: dict[str, tuple[str, Callable[[Mapping[str, Any], int], str]]] = {
    "os": ("Operating system", _section_os), "hardware": ("Hardware", _section_hardware),
    "filesystems": ("Filesystems", _section_filesystems), "network": ("Network", _section_network),
    "accounts": ("Accounts", _section_accounts), "listening": ("Listening ports", _section_listening),
    "firewall": ("Firewall", _section_firewall), "antivirus": ("Antivirus", _section_antivirus),
    "packages": ("Packages", _section_packages), "updates": ("Updates", _section_updates),
    "disk_health": ("Disk health", _section_disk_health), "backups": ("Backups", _section_backups),
    "time_sync": ("Time sync", _section_time_sync),
}


def _generic(d: Mapping[str, Any]) -> str:
    scalars = [(k, _cell(v)) for k, v in d.items() if not isinstance(v, list | dict)]
    out = _kv(scalars) if scalars else ""
    for k, v in d.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = [(c, c, None) for c in v[0]]
            out += f"<h4>{esc(k)}</h4>" + _table(v, cols)
        elif isinstance(v, list):
            out += _kv([(k, _cell(v))])
    return out


def register_html(inv: Mapping[str, tuple[int, dict[str, Any]]], now_ns: int) -> str:
    parts = []
    order = list(SECTIONS) + sorted(set(inv) - set(SECTIONS))
    for name in order:
        if name not in inv:
            continue
        t, data = inv[name]
        title, render = SECTIONS.get(name, (name, None))
        try:
            content = render(data, now_ns) if render else _generic(data)
        except Exception:  # an odd section from a misbehaving agent must not cost the page
            content = _generic(data)
        parts.append(f'<details class="reg" id="reg-{esc(name)}" open><summary>{esc(title)} '
                     f'<small>as of {t_html(t)}</small></summary>{content}</details>')
    return "".join(parts) or '<p class="muted">No register reported yet.</p>'


def _event_text(fields: Mapping[str, Any], raw: str) -> str:
    if fields:
        return esc(" ".join(f"{k}={v}" for k, v in fields.items()))[:400]
    return esc(raw[:400])


def logins_html(logins: Sequence[tuple[int, Mapping[str, Any], str]]) -> str:
    rows = []
    for t, f, _ in logins:
        res = str(f.get("result", ""))
        cls = "crit" if res == "failure" else ""
        rows.append(f'<tr><td>{t_html(t)}</td><td>{_cell(f.get("user"))}</td>'
                    f'<td class="{cls}">{_cell(res)}</td>'
                    f'<td>{_cell(f.get("service"))}</td><td>{_cell(f.get("src_ip"))}</td>'
                    f'<td>{_cell(f.get("method"))}</td></tr>')
    if not rows:
        return '<p class="muted">No logins recorded.</p>'
    return ('<table class="list" id="logins"><thead><tr><th>Time</th><th>User</th><th>Result</th>'
            '<th>Service</th>'
            f'<th>From</th><th>Method</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def events_html(events: Sequence[Any]) -> str:
    rows = [f'<tr><td>{t_html(e.event.time_ns)}</td><td><code>{esc(e.event.kind)}</code></td>'
            f'<td class="sev-{esc(e.event.severity)}">{esc(e.event.severity)}</td>'
            f'<td class="ev">{_event_text(e.event.fields, e.event.raw)}</td></tr>' for e in events]
    if not rows:
        return '<p class="muted">No events.</p>'
    return ('<table class="list" id="events"><thead><tr><th>Time</th><th>Kind</th><th>Severity</th>'
            '<th>Details'
            f'</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


CHARTS = (("cpu", "CPU %"), ("memory", "Memory %"), ("disk", "Filesystems used %"), ("load", "Load"))


def host_page(host: Any, inv: Mapping[str, tuple[int, dict[str, Any]]], active: Sequence[Mapping[str, Any]],
              past: Sequence[Mapping[str, Any]], logins: Sequence[tuple[int, Mapping[str, Any], str]],
              events: Sequence[Any], now_ns: int, *, is_admin: bool, csrf: str) -> str:
    sev, _ = host_severity(active)
    labels = " ".join(f'<span class="label">{esc(k)}={esc(v)}</span>' for k, v in sorted(host.labels.items()))
    seen = (now_ns - host.last_seen_ns) / NS if host.last_seen_ns else None
    state = "revoked" if host.revoked else sev
    range_buttons = "".join(f'<button type="button" data-range="{r}"{" class=on" if r == "1h" else ""}>'
                            f'{r}</button>'
                            for r in RANGES)
    charts = "".join(f'<figure class="chart" data-metric="{m}" id="chart-{m}"><figcaption>{t}</figcaption>'
                     f'<div class="plot"></div></figure>' for m, t in CHARTS)
    body = f"""<header class="hosthead s-{state}"><h1>{esc(host.host_id)}</h1><div>{labels}</div>
<p>{esc(host.os or "OS unknown")} · agent {esc(host.agent_version or "?")} · last seen
<span data-t="{host.last_seen_ns // NS}" class="ago">{fmt_age(seen)} ago</span>
({t_html(host.last_seen_ns)}) ·
state <b>{esc(state)}</b></p></header>
<section class="card"><h2>Active alerts</h2>{alerts_table(active, is_admin, csrf, "host-active", now_ns,
                                                          back=f"/hosts/{quote(host.host_id)}")}</section>
<section class="card"><h2>History <span class="ranges" id="ranges">{range_buttons}</span></h2>
<div class="charts" id="charts" data-host="{esc(host.host_id)}">{charts}</div></section>
<section class="card"><h2>Machine register</h2>{register_html(inv, now_ns)}</section>
<section class="card"><h2>Recent logins</h2>{logins_html(logins)}</section>
<section class="card"><h2>Recent events</h2>{events_html(events)}</section>
<section class="card"><h2>Past alerts</h2>{history_table(past)}</section>"""
    return body


# --- alerts -----------------------------------------------------------------------------------

def _flags(a: Mapping[str, Any]) -> str:
    out = []
    if a.get("acknowledged"):
        ack = a["acknowledged"]
        note = f' title="{esc(ack.get("comment") or "")}"' if ack.get("comment") else ""
        out.append(f'<span class="flag ack"{note}>acked by {esc(ack.get("by", ""))}</span>')
    if a.get("silenced_by"):
        out.append(f'<span class="flag muted">silenced ({esc(", ".join(f"#{i}" for i in a["silenced_by"]))})'
                   "</span>")
    if a.get("inhibited"):
        out.append('<span class="flag muted">inhibited</span>')
    return " ".join(out)


def _matchers_text(labels: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _actions(a: Mapping[str, Any], csrf: str, back: str) -> str:
    aid = int(a["id"])
    hidden = (f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
              f'<input type="hidden" name="back" value="{esc(back)}">')
    ack = ""
    if not a.get("acknowledged"):
        ack = (f'<details class="act"><summary>Acknowledge</summary><form method="post" '
               f'action="/alerts/{aid}/ack" class="ack-form">{hidden}'
               f'<label>Comment <input name="comment" maxlength="1000" placeholder="looking into it"></label>'
               f'<button type="submit">Acknowledge</button></form></details>')
    durations = "".join(f'<option value="{d}"{" selected" if d == "2h" else ""}>{d}</option>'
                        for d in SILENCE_DURATIONS)
    silence = (f'<details class="act"><summary>Silence</summary><form method="post" action="/silences" '
               f'class="silence-form">{hidden}<label>Matchers <small>(label=value, label=~regex, '
               f'label!=value; one per line)</small><textarea name="matchers" rows="4">'
               f'{esc(_matchers_text(a.get("labels", {})))}</textarea></label>'
               f'<label>For <select name="duration">{durations}</select></label>'
               f'<label>Comment <input name="comment" required maxlength="1000"></label>'
               f'<button type="submit">Silence</button></form></details>')
    return ack + silence


def alerts_table(active: Sequence[Mapping[str, Any]], is_admin: bool, csrf: str, table_id: str, now_ns: int,
                 back: str = "/alerts") -> str:
    if not active:
        return f'<p class="muted" id="{table_id}">No active alerts.</p>'
    rows = []
    order = {"critical": 0, "error": 0, "warning": 1, "info": 2}
    for a in sorted(active, key=lambda a: (a.get("state") != "firing", order.get(a.get("severity", ""), 3),
                                           -(a.get("fired_ns") or a.get("starts_ns") or 0))):
        sev = _SEV_CLASS.get(str(a.get("severity")), "info")
        host = a.get("labels", {}).get("host", "")
        host_link = f'<a href="/hosts/{quote(host)}">{esc(host)}</a>' if host else "—"
        since = a.get("fired_ns") or a.get("starts_ns")
        extra = ", ".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items())
                          if k not in ("alertname", "host", "severity"))
        muted = "" if counts_against(a) or a.get("state") != "firing" else " muted"
        rows.append(
            f'<tr class="alert{muted}" data-a="{int(a["id"])}" data-rule="{esc(str(a.get("rule")))}" '
            f'data-host="{esc(host)}"><td>#{int(a["id"])}</td><td><span class="sev s-{sev}">'
            f'{esc(str(a.get("severity")))}</span></td><td class="st-{esc(str(a.get("state")))}">'
            f'{esc(str(a.get("state")))}</td><td>{host_link}</td><td>'
            f'{esc(a.get("annotations", {}).get("summary") or str(a.get("rule")))}<br><small>'
            f'{esc(str(a.get("rule")))}{" · " + esc(extra) if extra else ""}</small></td>'
            f'<td>{t_html(since)}<br><small class="ago" data-t="{(since or 0) // NS}">'
            f'{fmt_age((now_ns - since) / NS if since else None)} ago</small></td>'
            f'<td class="flags">{_flags(a)}</td>'
            + (f'<td class="actions">{_actions(a, csrf, back)}</td>' if is_admin else "") + "</tr>")
    head = ("<th>#</th><th>Severity</th><th>State</th><th>Host</th><th>Summary</th><th>Since</th>"
            "<th>Flags</th>"
            + ("<th>Actions</th>" if is_admin else ""))
    return (f'<table class="list alerts" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _matchers_display(m: Mapping[str, Any]) -> str:
    out = []
    for k, v in m.items():
        if isinstance(v, dict) and "regex" in v:
            out.append(f"{k}=~{v['regex']}")
        elif isinstance(v, dict) and "not" in v:
            out.append(f"{k}!={v['not']}")
        else:
            out.append(f"{k}={v}")
    return ", ".join(out)


def silences_table(silences: Sequence[Mapping[str, Any]], is_admin: bool, csrf: str) -> str:
    if not silences:
        return '<p class="muted" id="silences">No active or pending silences.</p>'
    rows = []
    for s in silences:
        expire = ""
        if is_admin and s.get("state") != "expired":
            expire = (f'<form method="post" action="/silences/{int(s["id"])}/expire" class="expire-form">'
                      f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
                      '<button type="submit">Expire</button>'
                      "</form>")
        rows.append(f'<tr data-s="{int(s["id"])}"><td>#{int(s["id"])}</td><td><code>'
                    f'{esc(_matchers_display(s.get("matchers", {})))}</code></td>'
                    f'<td>{esc(str(s.get("state")))}</td>'
                    f'<td>{t_html(s.get("starts_ns"))}</td><td>{t_html(s.get("ends_ns"))}</td>'
                    f'<td>{esc(str(s.get("author")))}</td><td>{esc(str(s.get("comment") or ""))}</td>'
                    + (f"<td>{expire}</td>" if is_admin else "") + "</tr>")
    head = ("<th>#</th><th>Matchers</th><th>State</th><th>Starts</th><th>Ends</th><th>Author</th>"
            "<th>Comment</th>")
    return (f'<table class="list" id="silences"><thead><tr>{head}{"<th></th>" if is_admin else ""}</tr>'
            '</thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def history_table(past: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for a in past:
        if a.get("state") != "resolved":
            continue
        host = a.get("labels", {}).get("host", "")
        start = a.get("fired_ns") or a.get("starts_ns")
        dur = (a["ends_ns"] - start) / NS if a.get("ends_ns") and start else None
        ack = a.get("acknowledged")
        rows.append(f'<tr><td>#{int(a["id"])}</td><td><span class="sev s-'
                    f'{_SEV_CLASS.get(str(a.get("severity")), "info")}">{esc(str(a.get("severity")))}'
                    f'</span></td><td>{esc(host)}</td>'
                    f'<td>{esc(a.get("annotations", {}).get("summary") or str(a.get("rule")))}'
                    f'</td><td>{t_html(start)}</td><td>{t_html(a.get("ends_ns"))}</td><td>{fmt_age(dur)}</td>'
                    f'<td>{esc(ack["by"]) if ack else ""}</td></tr>')
    if not rows:
        return '<p class="muted">No resolved alerts.</p>'
    return ('<table class="list" id="history"><thead><tr><th>#</th><th>Severity</th><th>Host</th>'
            '<th>Summary</th>'
            '<th>From</th><th>Resolved</th><th>Lasted</th><th>Acked by</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


MESSAGES = {"acked": "Alert acknowledged.", "silenced": "Silence created.", "expired": "Silence expired."}


def alerts_live(active: Sequence[Mapping[str, Any]], silences: Sequence[Mapping[str, Any]], is_admin: bool,
                csrf: str, now_ns: int) -> str:
    """The part of the alerts page that live updates replace."""
    firing = sum(1 for a in active if a.get("state") == "firing")
    return (f'<section class="card"><h2>Active alerts <small>{firing} firing, {len(active) - firing} pending'
            f'</small></h2>{alerts_table(active, is_admin, csrf, "active", now_ns)}</section>'
            f'<section class="card"><h2>Silences</h2>{silences_table(silences, is_admin, csrf)}</section>')


def alerts_page(active: Sequence[Mapping[str, Any]], silences: Sequence[Mapping[str, Any]],
                past: Sequence[Mapping[str, Any]], is_admin: bool, csrf: str, now_ns: int,
                msg: str = "") -> str:
    note = f'<p class="ok-note" id="flash">{esc(MESSAGES[msg])}</p>' if msg in MESSAGES else ""
    role_note = "" if is_admin else '<p class="muted">Viewers see alerts; admins acknowledge and silence.</p>'
    return (f'{note}{role_note}<div class="toolbar"><span id="live" class="live">○ connecting</span></div>'
            f'<div id="alerts-live">{alerts_live(active, silences, is_admin, csrf, now_ns)}</div>'
            f'<section class="card"><h2>Resolved in the last 7 days</h2>{history_table(past)}</section>')


# --- compliance -------------------------------------------------------------------------------

def compliance_page(facts: Sequence[PatchFacts], active: Sequence[Mapping[str, Any]], group: str | None,
                    now_ns: int) -> str:
    keys = [k for k in PREFERRED_GROUPS if any(k in f.labels for f in facts)]
    keys += sorted({k for f in facts for k in f.labels} - set(keys))
    if group is None or (group and group not in keys):
        group = keys[0] if keys else ""
    summary = {row["host_id"]: row for row in compliance.patch_summary(
        (f.host_id, {"updates": f.updates} if f.updates else {}) for f in facts)}
    pending_alerts = {a.get("labels", {}).get("host", ""): a for a in active
                      if a.get("rule") == "security_updates_pending"}
    now_s = now_ns / NS

    stale: list[tuple[PatchFacts, dict[str, Any], float | None]] = []
    for f in facts:
        for s in (f.backups[1].get("sets") or []) if f.backups else []:
            t = s.get("newest_time_unix") or 0
            age = now_s - t if t > 0 else None
            if s.get("error"):
                continue  # unknown is not stale (as the backup_stale rule)
            if age is None or age > STALE_BACKUP_S:
                stale.append((f, s, age))
    stale_hosts = {f.host_id for f, _, _ in stale}

    groups: dict[str, dict[str, int]] = {}
    for f in facts:
        g = groups.setdefault(f.labels.get(group, "") if group else "", dict.fromkeys(
            ("hosts", "reporting", "current", "security", "reboot", "stale"), 0))
        row = summary[f.host_id]
        g["hosts"] += 1
        if row.get("reported") and not row.get("error"):
            g["reporting"] += 1
            g["current"] += not row.get("security")
            g["security"] += bool(row.get("security"))
        g["reboot"] += bool(row.get("reboot_required"))
        g["stale"] += f.host_id in stale_hosts
    options = "".join(f'<option value="{esc(k)}"{" selected" if k == group else ""}>{esc(k)}</option>'
                      for k in keys)
    options += f'<option value=""{" selected" if not group else ""}>(no grouping)</option>'
    grows = []
    for value in sorted(groups, key=lambda v: (v == "", v)):
        g = groups[value]
        pct = f"{100 * g['current'] / g['reporting']:.0f}%" if g["reporting"] else "—"
        cls = "" if not g["reporting"] else ("crit" if g["current"] < g["reporting"] * 0.8 else
                                             "warn" if g["current"] < g["reporting"] else "okc")
        grows.append(f'<tr><td>{esc(value) if value else "—"}</td><td>{g["hosts"]}</td>'
                     f'<td>{g["reporting"]}</td>'
                      f'<td class="{cls}">{pct}</td><td>{g["security"]}</td><td>{g["reboot"]}</td>'
                      f'<td>{g["stale"]}</td></tr>')

    def host_link(h: str) -> str:
        return f'<a href="/hosts/{quote(h)}">{esc(h)}</a>'

    sec_rows, reboot_rows, unreported = [], [], []
    by_id = {f.host_id: f for f in facts}
    for hid, row in summary.items():
        f = by_id[hid]
        gv = esc(f.labels.get(group, "")) if group else ""
        if not row.get("reported") or row.get("error"):
            unreported.append(f'<tr><td>{host_link(hid)}</td><td>{gv}</td><td>'
                              f'{esc(row.get("error") or "no updates section yet")}</td></tr>')
            continue
        if row.get("security"):
            data = f.updates[1] if f.updates else {}
            names = [str(u.get("name")) for u in data.get("pending") or () if u.get("security")]
            alert = pending_alerts.get(hid)
            age_s = (now_s - f.oldest_security_ns / 1e9) if f.oldest_security_ns else None
            oldest = fmt_age(age_s) if age_s is not None else "—"
            if alert is not None:
                oldest += f" (alert #{int(alert['id'])})"
            last = row.get("last_update_unix")
            sec_rows.append((age_s or 0, row.get("security") or 0,
                             f'<tr><td>{host_link(hid)}</td><td>{gv}</td><td>{row.get("security")}</td>'
                             f'<td>{row.get("pending")}</td><td>{oldest}</td><td>'
                             f'{fmt_age(now_s - last) + " ago" if last else "—"}</td><td>'
                             f'{esc(", ".join(names[:6]))}{" …" if len(names) > 6 else ""}</td></tr>'))
        if row.get("reboot_required"):
            data = f.updates[1] if f.updates else {}
            reboot_rows.append(f'<tr><td>{host_link(hid)}</td><td>{gv}</td><td>{_cell(row.get("running_kernel"))}'
                               f'</td><td>{_cell(row.get("newest_kernel"))}</td><td>'
                               f'{_cell(data.get("reboot_required_packages"))}</td></tr>')
    sec_rows.sort(key=lambda r: (-r[0], -r[1]))
    firsts = [f.oldest_security_ns for f in facts if f.oldest_security_ns]
    oldest_alert = (now_s - min(firsts) / 1e9) if firsts else None
    stale_rows = "".join(
        f'<tr><td>{host_link(f.host_id)}</td><td>{esc(f.labels.get(group, "")) if group else ""}</td>'
        f'<td>{esc(str(s.get("name")))}</td><td>{esc(str(s.get("source", "")))}</td>'
        f'<td>{fmt_age(age) + " ago" if age is not None else "no backup"}</td></tr>'
        for f, s, age in sorted(stale, key=lambda x: -(x[2] if x[2] is not None else float("inf"))))

    def table(rows: str, head: Sequence[str], tid: str, empty: str) -> str:
        if not rows:
            return f'<p class="muted" id="{tid}">{esc(empty)}</p>'
        th = "".join(f"<th>{esc(h)}</th>" for h in head)
        return f'<table class="list" id="{tid}"><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>'

    gh = group or "group"
    reporting = sum(g["reporting"] for g in groups.values())
    current = sum(g["current"] for g in groups.values())
    return f"""<div class="toolbar"><form method="get" action="/compliance"><label>Group by
<select name="group" id="group">{options}</select></label>
<noscript><button>Apply</button></noscript></form></div>
<section class="card"><h2>Patch compliance by {esc(gh)}</h2>
<p>{current} of {reporting} reporting host(s) have no security update pending
({f"{100 * current / reporting:.0f}%" if reporting else "—"}). Oldest pending security update:
<b>{fmt_age(oldest_alert) if oldest_alert else "none"}</b>.</p>
{table("".join(grows), (gh, "Hosts", "Reporting", "Up to date", "Security pending", "Reboot needed",
                        "Stale backups"), "groups-table", "No hosts.")}</section>
<section class="card"><h2>Security updates pending</h2><p class="muted">Oldest pending: how long the oldest
security update has been reported pending on the host (the store clocks each pending update from the
first report that listed it); the alert number when <code>security_updates_pending</code> fires.</p>
{table("".join(r for _, _, r in sec_rows), ("Host", gh, "Security", "All pending", "Oldest pending",
       "Last update", "Packages"), "security-table", "No host has security updates pending.")}</section>
<section class="card"><h2>Reboots needed</h2>{table("".join(reboot_rows), ("Host", gh, "Running kernel",
       "Newest kernel", "Packages"), "reboot-table", "No reboot needed.")}</section>
<section class="card"><h2>Stale backups
<small>(newest older than {STALE_BACKUP_S // 3600} h, or none)</small></h2>
{table(stale_rows, ("Host", gh, "Set", "Source", "Newest"), "stale-table",
       "All backups are fresh.")}</section>
<section class="card"><h2>Not reporting updates</h2>{table("".join(unreported), ("Host", gh, "Why"),
       "unreported-table", "Every host reports its updates.")}</section>"""


def to_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
