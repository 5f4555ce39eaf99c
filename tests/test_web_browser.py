"""The dashboard in a real browser: headless Chromium (Selenium) against a real collector
process serving HTTPS, fed by real agents (one follows an auth log the test writes sshd
lines to, so the default rule pack fires real alerts) plus a register of synthetic hosts
written to the collector's store. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.bench.bench_web import populate
from tests.harness import PY, AgentProc, CollectorProc, free_port, wait_for
from warden.agent.probes import registered
from warden.collector.store.sqlite import SqliteStore

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("chromium and chromium-driver are not installed (scripts/test installs them)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once we know a browser exists
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
ADMIN_PW, VIEWER_PW = "admin-password-42", "viewer-password-42"
ROOMS = ("A", "B", "C")


@dataclass
class Stack:
    collector: CollectorProc
    base: str
    auth_log: Path
    agents: list[AgentProc]


def _synthetic_labels(i: int) -> dict[str, str]:
    room = ROOMS[i % 3]
    return {"room": room, "rack": f"{room}{i % 4 + 1}", "role": ("web", "db", "app", "backup")[i % 4]}


def _syslog(msg: str, pid: int) -> str:
    return f"{time.strftime('%b %e %H:%M:%S', time.localtime())} web1 sshd[{pid}]: {msg}\n"


def _port_open(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s, ctx.wrap_socket(s):
        return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("web-browser")
    rules = tmp / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    web_port = free_port()
    # heartbeat 60s: the synthetic hosts below send nothing, and must not turn "silent" mid-test.
    collector = CollectorProc(tmp / "collector", collector={"heartbeat": "60s"},
                              rules={"dir": str(rules), "tick": "1s"},
                              web={"listen": f"127.0.0.1:{web_port}", "refresh": "1s"})
    collector.start()
    agents: list[AgentProc] = []
    try:
        wait_for(lambda: _port_open(web_port), 20, what="dashboard listening")
        for name, role, pw in (("admin", "admin", ADMIN_PW), ("viewer", "viewer", VIEWER_PW)):
            subprocess.run([PY, "-m", "warden.collector.cli", "--config", str(collector.config), "user",
                            "add", name, "--role", role, "--password-stdin"], input=pw + "\n", text=True,
                           check=True, capture_output=True, timeout=60)
        auth = tmp / "auth.log"
        auth.write_text("")
        quiet = {f"probes.{n}": {"enabled": False} for n in registered() if n not in ("logs", "system")}
        web1 = AgentProc(tmp / "web1", collector, "web1", **quiet, **{"probes.logs": {
            "interval_seconds": 0.2, "paths": [str(auth)], "journal": "off", "wtmp": "", "btmp": "",
            "start_at": "beginning"}})
        web1.enroll(collector.token(labels="room=A,rack=A1,role=web"))
        db1 = AgentProc(tmp / "db1", collector, "db1", **quiet, **{"probes.logs": {"enabled": False}})
        db1.enroll(collector.token(labels="room=B,rack=B2,role=db"))
        agents += [web1.start(), db1.start()]
        # The rest of the machine room: hosts with metrics, register and history, written to the
        # collector's own database (as ingest would), so the grid looks like a real one.
        store = SqliteStore(collector.root / "data" / "warden.db")
        try:
            populate(store, 34, samples=60, step_s=60, prefix="srv", labels_of=_synthetic_labels)
        finally:
            store.close()
        for a in agents:
            wait_for(lambda a=a: (collector.host(a.host_id) or {}).get("latest_metrics"), 30,
                     what=f"{a.host_id} reporting")
        yield Stack(collector, f"https://127.0.0.1:{web_port}", auth, agents)
    finally:
        for a in agents:
            a.stop()
        collector.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--ignore-certificate-errors", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def wait(d: WebDriver, pred: Any, timeout: float = 20, what: str = "") -> Any:
    return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda _: pred(), message=what)


def tile_class(d: WebDriver, host: str) -> str:
    return d.find_element(By.CSS_SELECTOR, f'.tile[data-h="{host}"]').get_attribute("class") or ""


def sign_in(d: WebDriver, base: str, user: str, password: str) -> None:
    d.get(base + "/login")
    d.find_element(By.ID, "user").clear()
    d.find_element(By.ID, "user").send_keys(user)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()


def firing(stack: Stack, rule: str) -> list[dict[str, Any]]:
    alerts = stack.collector.get("/api/v1/alerts")["alerts"]
    return [a for a in alerts if a["rule"] == rule and a["state"] == "firing"]


def page_errors(d: WebDriver) -> list[str]:
    """Script errors and CSP violations logged by the page since the last call (HTTP error
    statuses, such as the 401 of a refused sign-in, are not errors of the page)."""
    return [e["message"] for e in d.get_log("browser") if "Failed to load resource" not in e["message"]
            and (e["level"] == "SEVERE" or "Content Security Policy" in e["message"])]


def test_sign_in_refuses_a_wrong_password_and_accepts_the_right_one(stack: Stack, driver: WebDriver) -> None:
    d = driver
    d.get(stack.base + "/compliance")
    assert "/login" in d.current_url  # nothing without signing in
    sign_in(d, stack.base, "admin", "not-the-password")
    err = wait(d, lambda: d.find_elements(By.ID, "login-error"), what="sign-in error")
    assert "Wrong user name or password" in err[0].text and "/login" in d.current_url
    sign_in(d, stack.base, "admin", ADMIN_PW)
    wait(d, lambda: d.find_elements(By.CSS_SELECTOR, ".tile[data-h]"), what="overview after sign-in")
    assert d.current_url.rstrip("/") == stack.base
    assert "admin" in d.find_element(By.CSS_SELECTOR, ".who").text
    assert not page_errors(d)


def test_overview_groups_tiles_by_label_and_filters(stack: Stack, driver: WebDriver) -> None:
    d = driver
    d.get(stack.base + "/")
    groups = {g.get_attribute("data-g"): g for g in d.find_elements(By.CSS_SELECTOR, "section.group")}
    assert set(groups) == {"A", "B", "C"}  # grouped by room by default
    assert groups["A"].find_elements(By.CSS_SELECTOR, '.tile[data-h="web1"]')
    assert groups["B"].find_elements(By.CSS_SELECTOR, '.tile[data-h="db1"]')
    assert len(d.find_elements(By.CSS_SELECTOR, ".tile")) == 36
    tile = d.find_element(By.CSS_SELECTOR, '.tile[data-h="web1"]')
    text = tile.text
    assert "disk" in text and "backup" in text and "seen" in text
    # Another grouping key: by role.
    Select(d.find_element(By.ID, "group")).select_by_value("role")
    wait(d, lambda: "group=role" in d.current_url, what="regrouped")
    roles = {g.get_attribute("data-g") for g in d.find_elements(By.CSS_SELECTOR, "section.group")}
    assert roles == {"web", "db", "app", "backup"}
    # Search: by host name and by label value.
    q = d.find_element(By.ID, "q")
    q.send_keys("db1")
    wait(d, lambda: not d.find_element(By.CSS_SELECTOR, '.tile[data-h="web1"]').is_displayed(),
         what="filtered")
    assert d.find_element(By.CSS_SELECTOR, '.tile[data-h="db1"]').is_displayed()
    q.clear()
    q.send_keys("backup")  # a label value (role=backup)
    wait(d, lambda: len([t for t in d.find_elements(By.CSS_SELECTOR, ".tile") if t.is_displayed()]) == 8,
         what="label search")
    q.clear()
    d.execute_script("arguments[0].dispatchEvent(new Event('input'))", q)
    Select(d.find_element(By.ID, "group")).select_by_value("room")
    wait(d, lambda: "group=room" in d.current_url)


def test_host_page_charts_and_register(stack: Stack, driver: WebDriver) -> None:
    d = driver
    cpu = "/api/v1/hosts/web1/metrics?name=system_cpu_percent"
    wait_for(lambda: len(stack.collector.get(cpu)["series"][0]["points"]) >= 4, 30, what="a few CPU samples")
    d.get(stack.base + "/hosts/web1")

    def cpu_points() -> int:
        paths = d.find_elements(By.CSS_SELECTOR, "#chart-cpu path.line")
        return (paths[0].get_attribute("d") or "").count("L") if paths else 0

    wait(d, lambda: cpu_points() >= 3, what="CPU chart drawn with points")
    for m in ("memory", "disk", "load"):
        wait(d, lambda m=m: d.find_elements(By.CSS_SELECTOR, f"#chart-{m} path.line"), what=f"{m} chart")
    assert d.find_elements(By.CSS_SELECTOR, "#chart-cpu .axis text")  # axes are labelled
    overlay = d.find_element(By.CSS_SELECTOR, "#chart-cpu rect.overlay")
    ActionChains(d).move_to_element(overlay).move_by_offset(int(overlay.size["width"]) // 2 - 2, 0).perform()
    tip = d.find_element(By.CSS_SELECTOR, "#chart-cpu .tooltip")
    wait(d, lambda: tip.is_displayed() and "CPU:" in tip.text, what="hover tooltip")
    assert "%" in tip.text and tip.find_element(By.CLASS_NAME, "tt-time").text
    # Another time range redraws.
    d.find_element(By.CSS_SELECTOR, '#ranges button[data-range="24h"]').click()
    wait(d, lambda: d.find_element(By.ID, "chart-cpu").get_attribute("data-loaded") == "24h",
         what="24h range")
    register = d.find_element(By.CSS_SELECTOR, ".card details#reg-os").text
    assert "Kernel" in register
    # A host with an hour of history (synthetic) and a full register, for the screenshot.
    d.get(stack.base + "/hosts/srv-0009")
    wait(d, lambda: (d.find_element(By.CSS_SELECTOR, "#chart-disk path.line").get_attribute("d") or "")
         .count("L") >= 50, what="an hour of disk history")
    for section in ("os", "updates", "backups", "packages"):
        assert d.find_elements(By.ID, f"reg-{section}"), section
    overlay = d.find_element(By.CSS_SELECTOR, "#chart-cpu rect.overlay")
    ActionChains(d).move_to_element(overlay).move_by_offset(-int(overlay.size["width"]) // 5, 0).perform()
    wait(d, lambda: d.find_element(By.CSS_SELECTOR, "#chart-cpu .tooltip").is_displayed(), what="tooltip")
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / "host.png"))
    assert not page_errors(d)


def test_live_update_and_acknowledge(stack: Stack, driver: WebDriver) -> None:
    d = driver
    d.get(stack.base + "/")
    wait(d, lambda: "on" in (d.find_element(By.ID, "live").get_attribute("class") or ""),
         what="stream connected")
    assert "s-critical" not in tile_class(d, "web1")
    d.execute_script("window.__noReload = 42")
    with open(stack.auth_log, "a") as f:
        for i in range(6):
            f.write(_syslog(f"Failed password for root from 203.0.113.9 port {50000 + i} ssh2", 5000 + i))
    # First the collector (a failure here is the pipeline's, not the page's), then the page.
    wait_for(lambda: firing(stack, "ssh_brute_force"), 40, what="brute force alert")
    wait(d, lambda: "s-critical" in tile_class(d, "web1"), 15, what="web1 tile turns critical, live")
    assert d.execute_script("return window.__noReload") == 42  # patched in place, not reloaded
    assert d.find_element(By.CSS_SELECTOR, '.tile[data-h="web1"] [data-k="n"]').text == "1"
    assert "1 critical" in d.find_element(By.ID, "counts").text
    d.save_screenshot(str(SHOTS / "overview.png"))

    # Acknowledge it as admin from the alerts page.
    d.get(stack.base + "/alerts")
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-rule="ssh_brute_force"]')
    alert_id = int(row.get_attribute("data-a") or 0)
    row.find_element(By.CSS_SELECTOR, "details.act summary").click()
    row.find_element(By.CSS_SELECTOR, ".ack-form input[name=comment]").send_keys("blocking 203.0.113.9")
    row.find_element(By.CSS_SELECTOR, ".ack-form button").click()
    wait(d, lambda: "msg=acked" in d.current_url, what="acknowledged")
    row = d.find_element(By.CSS_SELECTOR, f'tr[data-a="{alert_id}"]')
    assert "acked by admin" in row.text
    ack = stack.collector.get(f"/api/v1/alerts/{alert_id}")["alert"]["acknowledged"]
    assert ack["by"] == "admin" and ack["comment"] == "blocking 203.0.113.9"

    # The alerts page updates by itself when a new alert fires.
    d.execute_script("window.__noReload = 43")
    with open(stack.auth_log, "a") as f:
        f.write(_syslog("Accepted password for root from 198.51.100.77 port 41000 ssh2", 6001))
    wait_for(lambda: firing(stack, "root_ssh_login"), 40, what="root login alert")
    wait(d, lambda: d.find_elements(By.CSS_SELECTOR, 'tr[data-rule="root_ssh_login"]'), 15,
         what="new alert appears on the alerts page without reload")
    assert d.execute_script("return window.__noReload") == 43
    d.save_screenshot(str(SHOTS / "alerts.png"))
    assert not page_errors(d)


def test_viewer_sees_alerts_but_no_actions(stack: Stack, driver: WebDriver) -> None:
    d = driver
    d.get(stack.base + "/")
    d.find_element(By.ID, "signout").click()
    wait(d, lambda: "/login" in d.current_url, what="signed out")
    d.get(stack.base + "/alerts")
    assert "/login" in d.current_url  # the session is gone
    sign_in(d, stack.base, "viewer", VIEWER_PW)
    wait(d, lambda: d.find_elements(By.CSS_SELECTOR, ".tile"), what="viewer overview")
    d.get(stack.base + "/alerts")
    assert d.find_elements(By.CSS_SELECTOR, 'tr[data-rule="ssh_brute_force"]')
    assert not d.find_elements(By.CSS_SELECTOR, ".ack-form, .silence-form")
    d.get(stack.base + "/compliance")
    assert "Patch compliance by room" in d.page_source
