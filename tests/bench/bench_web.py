"""Dashboard benchmark: how fast the overview renders for a large fleet.

    .venv/bin/python -m tests.bench.bench_web [--hosts 1000] [--repeat 5] [--no-browser] [--smoke]

A real SqliteStore is filled through `commit_batches` (as ingest does) with --hosts hosts in
rooms/racks/roles, each with what its agent sends: ~60 series (CPU and its modes, memory,
swap, load, 9 metrics per filesystem on 3 mounts, backups, updates, probe metrics) with a few
samples each, and a register (os, updates with pending packages, backups, 400 packages).
A real AlertManager (SQLite AlertStore) holds firing alerts for about a tenth of the hosts
(critical, warning, info, and some silent hosts).

Measured (median of --repeat runs):
1. `store_read_ms`: the overview's data through the Store interface (list_hosts +
   latest_metrics per host): what collector/web/fleet.py avoids.
2. `fleet_read_ms`: the same figures through FleetReader's read-only SQL.
3. `render_ms`: views.overview (the whole grid's HTML, one pass) from those figures.
4. `http_ms`: GET / over real TLS from a signed-in client, WebApp served in-process
   (read + render + transfer); `html_kb` its size.
5. `browser_*_ms` (if chromium and chromedriver are installed): headless Chromium signed in,
   navigation start to first contentful paint / DOMContentLoaded / load of the overview.

`--smoke` (tests/test_bench_web.py): 40 hosts, 2 repeats. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warden.collector.alerts.manager import AlertManager
from warden.collector.alerts.store import AlertStore
from warden.collector.config import WebSection
from warden.collector.pki import CollectorPKI
from warden.collector.records import Batch, InventorySection, MetricSample
from warden.collector.rules.model import Transition
from warden.collector.store.sqlite import SqliteStore
from warden.collector.web import views
from warden.collector.web.app import COOKIE, WebApp
from warden.collector.web.fleet import FleetReader
from warden.collector.web.users import UserStore

NS = 1_000_000_000
ROLES = ("web", "db", "app", "backup", "build", "file")
MOUNTS = ("/", "/var", "/home")
FS_METRICS = ("total_bytes", "used_bytes", "free_bytes", "used_percent", "readonly", "inodes_total",
              "inodes_used", "inodes_free", "inodes_used_percent")
PASSWORD = "bench-password-123"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def host_labels(i: int) -> dict[str, str]:
    room = f"R{i // 200 + 1}"
    return {"room": room, "rack": f"{room}-{(i // 20) % 10 + 1:02d}", "role": ROLES[i % len(ROLES)]}


def _host_records(i: int, rng: random.Random, now_ns: int, samples: int, step_s: int) -> list[Any]:
    recs: list[Any] = []
    disk_hot = i % 37 == 0
    # Plausible shapes, not noise: a daily-ish CPU wave, steady memory, slowly filling disks.
    cpu_base, mem_base = rng.uniform(5, 40), rng.uniform(20, 70)
    fs_base = {m: rng.uniform(20, 75) for m in MOUNTS}
    for k in range(samples):
        t = now_ns - (samples - 1 - k) * step_s * NS
        cpu = max(0.0, cpu_base * (1 + 0.5 * math.sin(k / 7 + i)) + rng.uniform(-3, 3))
        recs.append(MetricSample("system_cpu_percent", {}, cpu, t))
        for mode in ("user", "system", "iowait", "idle"):
            recs.append(MetricSample("system_cpu_mode_percent", {"mode": mode}, rng.uniform(0, 50), t))
        recs.append(MetricSample("system_memory_used_percent", {}, mem_base + rng.uniform(-2, 2), t))
        recs.append(MetricSample("system_swap_used_percent", {}, mem_base / 10 + rng.uniform(0, 0.5), t))
        for name in ("memory_available_bytes", "memory_total_bytes", "memory_used_bytes", "swap_total_bytes",
                     "swap_used_bytes"):
            recs.append(MetricSample(f"system_{name}", {}, rng.uniform(1e9, 8e9), t))
        for n, v in (("load1", 0.8), ("load5", 0.6), ("load15", 0.5), ("uptime_seconds", 1e6)):
            recs.append(MetricSample(f"system_{n}", {}, v * rng.uniform(0.5, 1.5), t))
        for m in MOUNTS:
            used = 93.0 if disk_hot and m == "/var" else fs_base[m] + 0.02 * k + rng.uniform(-0.1, 0.1)
            for fm in FS_METRICS:
                recs.append(MetricSample(f"system_filesystem_{fm}", {"mount": m},
                                         used if fm == "used_percent" else rng.uniform(0, 1e9), t))
        for probe in ("system", "inventory", "packages", "backups", "logs", "disk"):
            recs.append(MetricSample("agent_probe_success", {"probe": probe}, 1.0, t))
            recs.append(MetricSample("agent_probe_duration_seconds", {"probe": probe}, 0.01, t))
    t = now_ns
    stale = i % 41 == 0
    recs.append(MetricSample("backup_newest_age_seconds", {"set": "nightly"},
                             (30 if stale else rng.uniform(1, 20)) * 3600, t))
    sec = 3 if i % 9 == 0 else 0
    recs.append(MetricSample("updates_pending", {"manager": "dpkg"}, sec + (i % 4), t))
    recs.append(MetricSample("updates_security_pending", {"manager": "dpkg"}, sec, t))
    recs.append(MetricSample("reboot_required", {"manager": "dpkg"}, 1.0 if i % 13 == 0 else 0.0, t))
    now_s = now_ns // NS
    recs.append(InventorySection("os", t, {
        "hostname": f"host-{i:04d}.example.org", "os_name": "Debian GNU/Linux 12 (bookworm)",
        "os_id": "debian",
        "os_version": "12", "kernel": "6.1.0-18-amd64", "arch": "x86_64", "boot_time_unix": now_s - 86400 * 9,
        "agent_version": "0.1.0", "timezone": "Europe/Paris"}))
    pending = [{"name": f"lib{j}", "current_version": "1.0-1", "new_version": "1.0-2", "arch": "amd64",
                "security": j < sec,
                "origin": "Debian-Security:12/stable-security" if j < sec else "Debian:12"}
               for j in range(sec + i % 4)]
    recs.append(InventorySection("updates", t, {
        "manager": "dpkg", "pending": pending, "pending_count": len(pending), "security_count": sec,
        "last_update_unix": now_s - 86400 * (i % 20), "running_kernel": "6.1.0-18-amd64",
        "newest_kernel": "6.1.0-20-amd64" if i % 13 == 0 else "6.1.0-18-amd64",
        "reboot_required": i % 13 == 0,
        "reboot_required_packages": ["linux-image-amd64"] if i % 13 == 0 else [],
        "error": ""}))
    recs.append(InventorySection("backups", t, {"sets": [{
        "name": "nightly", "source": "restic", "newest": "a1b2c3",
        "newest_time_unix": now_s - (30 if stale else 5) * 3600, "newest_size_bytes": 5 * 10**9, "count": 30,
        "median_previous_size_bytes": 5 * 10**9, "offsite_configured": True, "offsite_present": True,
        "offsite_matches": True, "verification": "ok", "error": ""}]}))
    recs.append(InventorySection("packages", t, {
        "manager": "dpkg", "content_hash": f"{i:064x}", "full": True, "count": 400,
        "packages": [{"name": f"package-{j}", "version": f"1.{j}-1", "arch": "amd64"} for j in range(400)]}))
    return recs


def populate(store: SqliteStore, n_hosts: int, now_ns: int | None = None, samples: int = 3, step_s: int = 60,
             seed: int = 7, prefix: str = "host",
             labels_of: Callable[[int], dict[str, str]] = host_labels) -> list[str]:
    """Enroll `n_hosts` hosts and store what their agents would have sent; returns the host ids."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    rng = random.Random(seed)
    ids = []
    batches = []
    for i in range(n_hosts):
        host_id = f"{prefix}-{i:04d}"
        ids.append(host_id)
        store.enroll_host(host_id, f"{host_id}.example.org", labels_of(i), f"{prefix}{i:06x}".encode().hex(),
                          now_ns - 86400 * NS, now_ns + 86400 * NS, now_ns - 86400 * NS)
        recs = _host_records(i, rng, now_ns, samples, step_s)
        batches.append(Batch(host_id, "bench", 1, len(recs), recs))
        if len(batches) >= 50:
            store.commit_batches(batches, now_ns)
            batches = []
    if batches:
        store.commit_batches(batches, now_ns)
    return ids


def fire_alerts(mgr: AlertManager, host_ids: list[str], now_ns: int | None = None) -> int:
    """Firing alerts on about a tenth of the hosts; returns how many."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    ts = []
    for i, h in enumerate(host_ids):
        if i % 10 != 3 and i % 53 != 0:
            continue
        if i % 53 == 0:
            rule, sev, summary = "host_silent", "critical", f"{h}: no report or heartbeat for 5 min"
        elif i % 30 == 3:
            rule, sev = "ssh_brute_force", "critical"
            summary = f"{h}: 12 failed logins from 203.0.113.9 within 60 s"
        elif i % 20 == 3:
            rule, sev, summary = "disk_almost_full", "warning", f"{h}: filesystem /var 93% full"
        else:
            rule, sev, summary = "interface_added", "info", f"{h}: network interface eth1 added"
        labels = {"alertname": rule, "host": h, "severity": sev}
        ts.append(Transition(rule, f"{rule}:{h}", labels, {"summary": summary}, "firing", now_ns,
                             now_ns - 60 * NS,
                             1.0))
    mgr.apply(ts, now_ns)
    return len(ts)


def _median_ms(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1), out


def _browser(port: int, user: str, password: str, repeat: int) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--ignore-certificate-errors", "--window-size=1400,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        base = f"https://127.0.0.1:{port}"
        d.get(base + "/login")
        d.find_element(By.ID, "user").send_keys(user)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "#login button").click()
        fcp, dcl, load, tiles = [], [], [], 0
        for _ in range(repeat):
            d.get(base + "/")
            timing = d.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, fcp: p ? p.startTime : null,"
                " tiles: document.querySelectorAll('.tile').length};")
            dcl.append(timing["dcl"])
            load.append(timing["load"])
            if timing["fcp"] is not None:
                fcp.append(timing["fcp"])
            tiles = timing["tiles"]
        return {"browser_fcp_ms": round(statistics.median(fcp), 1) if fcp else None,
                "browser_dcl_ms": round(statistics.median(dcl), 1),
                "browser_load_ms": round(statistics.median(load), 1), "browser_tiles": tiles}
    finally:
        d.quit()


def run(n_hosts: int, repeat: int, browser: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-web-"))
    try:
        t0 = time.perf_counter()
        store = SqliteStore(tmp / "warden.db")
        ids = populate(store, n_hosts)
        alert_store = AlertStore(tmp / "alerts.db")
        mgr = AlertManager(alert_store)
        n_alerts = fire_alerts(mgr, ids)
        setup_s = time.perf_counter() - t0

        store_ms, _ = _median_ms(lambda: [(h, store.latest_metrics(h.host_id)) for h in store.list_hosts()],
                                 repeat)
        fleet = FleetReader(tmp / "warden.db")
        fleet_ms, facts = _median_ms(fleet.facts, repeat)
        active = mgr.active()
        render_ms, (html, _) = _median_ms(lambda: views.overview(facts, active, None, time.time_ns()), repeat)
        fleet.close()
        assert html.count('class="tile ') == n_hosts, "every host has a tile"

        pki = CollectorPKI.load_or_create(tmp / "tls", ["localhost", "127.0.0.1"])
        users = UserStore(tmp / "web.db")
        users.add_user("bench", "viewer", PASSWORD)
        result: dict[str, Any] = {"bench": "web_overview", "hosts": n_hosts, "alerts": n_alerts,
                                  "setup_s": round(setup_s, 1), "store_read_ms": store_ms,
                                  "fleet_read_ms": fleet_ms, "render_ms": render_ms}
        result.update(_serve_and_measure(store, tmp, users, mgr, pki, repeat, browser))
        users.close()
        alert_store.close()
        store.close()
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _serve_and_measure(store: SqliteStore, tmp: Path, users: UserStore, mgr: AlertManager, pki: CollectorPKI,
                       repeat: int, browser: bool) -> dict[str, Any]:
    """Serve the WebApp on a loop in a thread (as in the collector), measure from outside."""
    import urllib.request

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        app = WebApp(WebSection(listen="127.0.0.1:0"), store, tmp / "warden.db", users, mgr, None,
                     pki.server_cert_pem, pki.server_key_pem)
        holder["app"], holder["port"] = app, await app.start("127.0.0.1:0")
        holder["stop"] = asyncio.Event()
        ready.set()
        await holder["stop"].wait()
        await app.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(30)
    port = holder["port"]
    out: dict[str, Any] = {}
    try:
        token, _ = users.create_session(users.get("bench"), 3600)  # type: ignore[arg-type]
        ctx = ssl.create_default_context(cadata=pki.ca_cert_pem.decode())
        ctx.check_hostname = False  # the certificate names localhost; we connect to 127.0.0.1

        def get() -> bytes:
            req = urllib.request.Request(f"https://127.0.0.1:{port}/",
                                         headers={"Cookie": f"{COOKIE}={token}"})
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return r.read()

        get()  # warm-up: TLS session, imports
        http_ms, body = _median_ms(get, repeat)
        out.update({"http_ms": http_ms, "html_kb": round(len(body) / 1024)})
        if browser and shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
            out.update(_browser(port, "bench", PASSWORD, repeat))
        elif browser:
            out["browser"] = "chromium/chromedriver not installed"
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.hosts, args.repeat = 40, 2
    r = run(args.hosts, args.repeat, not args.no_browser)
    for k, v in r.items():
        print(f"{k:>16}: {v}", file=sys.stderr)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
