"""The Debian packages, for real: built with scripts/build-debs, installed with dpkg on this
machine, run as their service users, upgraded, removed and purged.

Needs root and dpkg (skipped otherwise, and skipped when a real Warden installation is
present: the test would take it over and purge it). Select with `-m packaging` or
`tests/test_packaging.py`; deselect with `-m "not packaging"`. About two minutes, most of it
building the two versions of both packages (one venv each); 20 s more with systemd-nspawn.

systemd is not PID 1 here, so the units cannot be started. Instead each service is started
the way its unit would start it, from the installed unit file: User=, Group=,
SupplementaryGroups=, CapabilityBoundingSet=, AmbientCapabilities=, NoNewPrivileges= and
UMask= through setpriv, MemoryDenyWriteExecute= through the kernel's own equivalent
(prctl PR_SET_MDWE), a clean environment and / as working directory. The namespace and
seccomp settings (ProtectSystem=, SystemCallFilter=, ...) get `systemd-analyze verify` and
`systemd-analyze security --offline`; and, where systemd-nspawn is installed
(systemd-container), a last step runs everything again under a real systemd as PID 1 in a
container booted from this machine's own OS on a throwaway overlay (skipped otherwise).

The steps depend on each other and run in file order; after a failed step the later ones are
skipped. Whatever happens, the packages are purged at the end and the machine left as found.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("warden-agent", "warden-collector")
USERS = PACKAGES
HOST_ID = "warden-pkgtest"
UNIT_DIR = Path("/lib/systemd/system")
AGENT_STATE = Path("/var/lib/warden-agent")
COLLECTOR_DATA = Path("/var/lib/warden-collector")
AGENT_CONF = Path("/etc/warden/agent.toml")
COLLECTOR_CONF = Path("/etc/warden/collector.toml")
# What systemd gives a system service's environment (plus USER/LOGNAME/HOME/SHELL for User=).
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Runs as the last step before the service's own binary: the kernel's MemoryDenyWriteExecute
# (PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1), kept across fork and execve.
MDWE_SHIM = ("import ctypes, os, sys\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "if libc.prctl(65, 1, 0, 0, 0) != 0:\n"
             "    sys.exit('PR_SET_MDWE: ' + os.strerror(ctypes.get_errno()))\n"
             "os.execv(sys.argv[1], sys.argv[1:])\n")




def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: installs the packages with dpkg and creates system users"
    for tool in ("dpkg", "dpkg-deb", "unshare", "setpriv", "adduser", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"needs {tool} (a Debian system)"
    if not Path("/usr/bin/python3").exists():
        return "needs Debian's /usr/bin/python3"
    for pkg in PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg],
                                capture_output=True, text=True).stdout.strip()
        if status and not status.startswith("un"):
            return f"{pkg} is installed here ({status}): the test would replace and purge it"
    for user in USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return f"a user {user} exists here: the test would delete it"
    for path in (Path("/etc/warden"), AGENT_STATE, COLLECTOR_DATA):
        if path.exists():
            return f"{path} exists here: the test would delete it"
    return None


_SKIP = _why_not()
pytestmark = [pytest.mark.packaging, pytest.mark.skipif(_SKIP is not None, reason=str(_SKIP))]


# ---- helpers ---------------------------------------------------------------------------------

def sh(*argv: str | Path, check: bool = True, timeout: float = 120,
       **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {res.returncode}\n"
                             f"stdout: {res.stdout[-3000:]}\nstderr: {res.stderr[-3000:]}")
    return res


def dpkg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """dpkg, non-interactive, waiting (up to 2 min) while another dpkg or apt holds the lock."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + 120
    while True:
        res = sh("dpkg", *args, check=False, env=env, timeout=300)
        locked = "lock" in res.stderr and ("locked" in res.stderr or "unable to" in res.stderr)
        if res.returncode == 0 or not locked or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert res.returncode == 0, f"dpkg {' '.join(map(str, args))}: {res.stdout}\n{res.stderr}"
    return res


def status(pkg: str) -> str:
    return sh("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, check=False).stdout.strip()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(*dirs: Path) -> dict[str, str]:
    """sha256 of every file under dirs (keys, certificates, identity)."""
    return {str(p): sha256(p) for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


def unit_settings(unit: str) -> dict[str, list[str]]:
    """[Service] settings of an installed unit file; repeated keys accumulate."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (UNIT_DIR / unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _caps(values: list[str]) -> list[str]:
    caps: list[str] = []
    for value in values:
        if not value:  # an empty assignment resets the list
            caps = []
        caps += [c.lower().removeprefix("cap_") for c in value.split()]
    return caps


def service_argv(unit: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `argv` with the unit's credentials (see module doc)."""
    s = unit_settings(unit)
    user = s["User"][-1]
    group = s.get("Group", [user])[-1]
    groups = " ".join(s.get("SupplementaryGroups", [])).split()
    bounding, ambient = _caps(s.get("CapabilityBoundingSet", [])), _caps(s.get("AmbientCapabilities", []))
    cmd = ["setpriv", f"--reuid={user}", f"--regid={group}",
           f"--groups={','.join(groups)}" if groups else "--clear-groups",
           "--inh-caps=" + ",".join(["-all", *[f"+{c}" for c in ambient]]),
           "--bounding-set=" + ",".join(["-all", *[f"+{c}" for c in bounding]])]
    if ambient:
        cmd.append("--ambient-caps=" + ",".join(f"+{c}" for c in ambient))
    if s.get("NoNewPrivileges", ["no"])[-1] == "yes":
        cmd.append("--no-new-privs")
    cmd.append("--")
    if s.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        cmd += ["/usr/bin/python3", "-I", "-c", MDWE_SHIM]
    pw = pwd.getpwnam(user)
    env = {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", "USER": user, "LOGNAME": user,
           "HOME": pw.pw_dir, "SHELL": pw.pw_shell}
    return cmd + argv, env


class Service:
    """One service started as its unit would start it; stopped with SIGTERM like systemd."""

    def __init__(self, unit: str, argv: list[str], log: Path) -> None:
        self.unit, self.argv, self.log = unit, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        cmd, env = service_argv(self.unit, self.argv)
        umask = int(unit_settings(self.unit).get("UMask", ["0022"])[-1], 8)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd="/", start_new_session=True,
                                         preexec_fn=lambda: os.umask(umask))
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.unit} exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children it left behind (journalctl, tools)
        self.proc = None


def http_get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


# ---- the shared run --------------------------------------------------------------------------

class Run:
    """State carried from step to step."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.debs: dict[str, dict[str, Path]] = {}
        self.versions: list[str] = []
        self.failed: str | None = None
        self.collector: Service | None = None
        self.agent: Service | None = None
        self.http_port = 0
        self.collector_config = tmp / "collector.toml"
        self.app_log = tmp / "log" / "app.log"
        self.local_agent_conf = ""
        self.markers: dict[str, str] = {}

    def services(self) -> list[Service]:
        return [s for s in (self.agent, self.collector) if s is not None]

    # -- starting and stopping the two services --
    def start_collector(self) -> None:
        argv = ["/usr/bin/warden-collector", "serve", "--config", str(self.collector_config)]
        self.collector = Service("warden-collector.service", argv, self.tmp / "collector.log").start()

        def healthy() -> bool:
            assert self.collector is not None
            self.collector.check_alive()
            return http_get(self.http_port, "/healthz")["status"] == "ok"

        wait_for(healthy, 60, 0.25, what="the installed collector's /healthz")

    def start_agent(self) -> None:
        exec_start = unit_settings("warden-agent.service")["ExecStart"][-1].split()
        self.agent = Service("warden-agent.service", exec_start, self.tmp / "agent.log").start()

    def stop(self, which: str) -> None:
        svc = getattr(self, which)
        if svc is not None:
            svc.stop()
            setattr(self, which, None)

    def events(self) -> list[dict[str, Any]]:
        return http_get(self.http_port, f"/api/v1/events?host={HOST_ID}&limit=1000")["events"]

    def write_marker(self, name: str) -> str:
        marker = f"warden-pkgtest-{name}-{uuid.uuid4().hex[:12]}"
        stamp = time.strftime("%b %e %H:%M:%S")
        with self.app_log.open("a") as f:
            f.write(f"{stamp} {os.uname().nodename} pkgtest[4242]: {marker}\n")
        self.markers[name] = marker
        return marker

    def marker_count(self, name: str) -> int:
        marker = self.markers[name]
        return sum(json.dumps(e).count(marker) > 0 for e in self.events())


@pytest.fixture(scope="module")
def run():
    # One run at a time on a machine (a second would find the first's packages installed).
    lock = open("/run/lock/warden-packaging-test.lock", "w")  # noqa: SIM115 - held for the module
    fcntl.flock(lock, fcntl.LOCK_EX)
    tmp = Path(tempfile.mkdtemp(prefix="warden-pkgtest-"))
    tmp.chmod(0o755)  # the service users read the test's collector config and log file here
    r = Run(tmp)
    try:
        yield r
    finally:
        for svc in r.services():
            svc.stop()
        _purge_everything()
        shutil.rmtree(tmp, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _purge_everything() -> None:
    """Leave the machine as found, whatever state a failure left it in."""
    installed = [p for p in PACKAGES if status(p) and "not-installed" not in status(p)]
    if installed:
        subprocess.run(["dpkg", "--purge", *installed], capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    for user in USERS:
        if subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 0:
            subprocess.run(["deluser", "--system", "--quiet", user], capture_output=True)
        if subprocess.run(["getent", "group", user], capture_output=True).returncode == 0:
            subprocess.run(["delgroup", "--system", "--quiet", user], capture_output=True)
    for path in ("/etc/warden", AGENT_STATE, COLLECTOR_DATA, "/opt/warden-agent", "/opt/warden-collector"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def step(run: Run, request: pytest.FixtureRequest):
    """Skip when an earlier step failed; record this step's failure for the later ones.
    (pytest has counted a failed call by the time this fixture is torn down.)"""
    if run.failed:
        pytest.skip(f"an earlier step failed: {run.failed}")
    failed_before = request.session.testsfailed
    yield run
    if request.session.testsfailed > failed_before:
        run.failed = request.node.name


# ---- the steps -------------------------------------------------------------------------------

def test_build(step: Run) -> None:
    """scripts/build-debs, twice (the second version for the upgrade); both build the venvs
    for real. zstd instead of the default xz only to save time: same contents."""
    run = step
    arch = sh("dpkg", "--print-architecture").stdout.strip()
    base = re.search(r'__version__ = "([^"]+)"', (REPO / "agent" / "__init__.py").read_text()).group(1)
    base = re.sub(r"[.-]?(dev|a|b|rc)(\d*)", r"~\1\2", base)
    for n, version in enumerate([base, base + "+1"]):
        out = run.tmp / f"v{n + 1}"
        sh(REPO / "scripts" / "build-debs", "--version", version, "--out", out, "--compress", "zstd",
           timeout=600)
        run.versions.append(version)
        run.debs[version] = {p: out / f"{p}_{version}_{arch}.deb" for p in PACKAGES}
        for deb in run.debs[version].values():
            assert deb.exists(), f"build-debs did not write {deb}"

    v1 = run.versions[0]
    agent_deb, collector_deb = run.debs[v1]["warden-agent"], run.debs[v1]["warden-collector"]
    for deb, pkg in ((agent_deb, "warden-agent"), (collector_deb, "warden-collector")):
        fields = dict(re.findall(r"^ ?([A-Za-z-]+): (.*)$", sh("dpkg-deb", "-f", deb).stdout, re.M))
        assert fields["Package"] == pkg and fields["Version"] == v1
        assert fields["Architecture"] == arch
        depends = [d.strip() for d in fields["Depends"].split(",")]
        assert re.fullmatch(r"python3\.\d+", depends[0]) and "adduser" in depends, depends
        if shutil.which("dpkg-shlibdeps"):  # the compiled wheels' C libraries
            assert any(d.startswith("libc6 (>= ") for d in depends), depends
        contents = sh("dpkg-deb", "-c", deb).stdout
        changelog = "changelog.Debian.gz" if "-" in v1 else "changelog.gz"  # native or not
        for path in (f"./usr/bin/{pkg}", f"./lib/systemd/system/{pkg}.service",
                     f"./opt/{pkg}/venv/pyvenv.cfg", f"./opt/{pkg}/requirements.lock",
                     f"./usr/share/doc/{pkg}/copyright", f"./usr/share/doc/{pkg}/{changelog}"):
            assert path in contents, f"{deb.name} lacks {path}"
        assert f"./opt/{pkg}/venv/lib/python3" in contents
        for script in ("postinst", "prerm", "postrm", "conffiles", "md5sums"):
            sh("dpkg-deb", "--info", deb, script)
    assert "Recommends: smartmontools" in sh("dpkg-deb", "-I", agent_deb).stdout
    # The agent's venv has no collector-only libraries, the collector's has them.
    assert "site-packages/aiohttp/" not in sh("dpkg-deb", "-c", agent_deb).stdout
    assert "site-packages/aiohttp/" in sh("dpkg-deb", "-c", collector_deb).stdout
    assert sh("dpkg-deb", "--info", agent_deb, "conffiles").stdout.split() == ["/etc/warden/agent.toml"]
    collector_conffiles = sh("dpkg-deb", "--info", collector_deb, "conffiles").stdout.split()
    assert collector_conffiles[0] == "/etc/warden/collector.toml"
    assert sorted(collector_conffiles[1:]) == sorted(f"/etc/warden/rules/{p.name}"
                                                     for p in (REPO / "rules").glob("*.yml"))
    # Built where it will live; no trace of the build machine's temporary paths.
    assert not Path("/opt/warden-agent").exists() and not Path("/opt/warden-collector").exists()


def test_install(step: Run) -> None:
    run = step
    v1 = run.versions[0]
    dpkg("-i", run.debs[v1]["warden-agent"], run.debs[v1]["warden-collector"])
    for pkg in PACKAGES:
        assert status(pkg) == f"install ok installed {v1}"
        assert Path(f"/usr/bin/{pkg}").exists() and (UNIT_DIR / f"{pkg}.service").exists()
        assert Path(f"/opt/{pkg}/venv/bin/python3").resolve().name.startswith("python3.")

    # Users: system accounts, no login, no home created; the agent in adm and shadow.
    for user in USERS:
        pw = pwd.getpwnam(user)
        assert pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"), pw
        assert grp.getgrgid(pw.pw_gid).gr_name == user
    assert "warden-agent" in grp.getgrnam("adm").gr_mem and "warden-agent" in grp.getgrnam("shadow").gr_mem
    assert "warden-collector" not in grp.getgrnam("adm").gr_mem

    # State directories 0750, owned by the service users.
    for path, user in ((AGENT_STATE, "warden-agent"), (COLLECTOR_DATA, "warden-collector")):
        st = path.stat()
        assert (pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o7777) == (user, 0o750)

    # Configuration: conffiles, readable by root and the service group only.
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "warden-agent", "warden-collector").stdout
    assert f" {AGENT_CONF} " in conffiles and f" {COLLECTOR_CONF} " in conffiles
    assert " /etc/warden/rules/disk.yml " in conffiles
    for path, group in ((AGENT_CONF, "warden-agent"), (COLLECTOR_CONF, "warden-collector")):
        st = path.stat()
        assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777) == (0, group, 0o640)
    assert 'state_dir = "/var/lib/warden-agent"' in AGENT_CONF.read_text()
    assert 'dir = "/etc/warden/rules"' in COLLECTOR_CONF.read_text()

    # The commands, from /usr/bin, as root and as an ordinary user.
    for pkg in PACKAGES:
        assert f"usage: {pkg}" in sh(f"/usr/bin/{pkg}", "--help").stdout
        assert f"usage: {pkg}" in sh("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                     f"/usr/bin/{pkg}", "--help", cwd="/").stdout
    # Installed, the collector CLI reads /etc/warden/collector.toml: its rules directory.
    rules = sh("/usr/bin/warden-collector", "rules", "check", cwd="/").stdout
    assert rules.startswith("OK: ") and f"in {len(list((REPO / 'rules').glob('*.yml')))} file(s)" in rules

    # The units: valid, and hardened (systemd's own exposure rating).
    units = [UNIT_DIR / f"{pkg}.service" for pkg in PACKAGES]
    res = sh("systemd-analyze", "verify", *units, check=False)
    assert res.returncode == 0 and "warden" not in res.stderr, res.stderr
    for unit in units:
        out = sh("systemd-analyze", "security", "--offline=yes", unit).stdout
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
        assert m and m.group(2) in ("SAFE", "OK"), out[-500:]
    # Enabled the Debian way, although systemd is not running here.
    wants = Path("/etc/systemd/system/multi-user.target.wants")
    assert all((wants / f"{pkg}.service").is_symlink() for pkg in PACKAGES)


def test_service_credentials(step: Run) -> None:
    """The agent's unit credentials reach the tools it runs (smartctl...): the two ambient
    capabilities survive exec under NoNewPrivileges and MDWE, nothing else does."""
    cmd, env = service_argv("warden-agent.service", ["/bin/sh", "-c", "grep -E '^(Cap|Groups|NoNewPrivs)' "
                                                     "/proc/self/status; id -un"])
    out = sh(*cmd, env=env, cwd="/").stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    want = (1 << 2) | (1 << 17)  # CAP_DAC_READ_SEARCH, CAP_SYS_RAWIO
    for key in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
        assert int(fields[key].strip(), 16) == want, out
    assert fields["NoNewPrivs"].strip() == "1"
    assert {grp.getgrgid(int(g)).gr_name for g in fields["Groups"].split()} == {"adm", "shadow"}
    assert out.splitlines()[-1] == "warden-agent"
    cmd, env = service_argv("warden-collector.service", ["/bin/sh", "-c", "grep -E '^Cap' /proc/self/status"])
    out = sh(*cmd, env=env, cwd="/").stdout
    assert all(int(line.split(":")[1], 16) == 0 for line in out.splitlines()), out


def test_enroll_and_report(step: Run) -> None:
    run = step
    # The collector on free loopback ports: the installed config with only the addresses changed.
    text = COLLECTOR_CONF.read_text()
    ports = {}

    def port(m: re.Match[str]) -> str:
        p = free_port()
        ports[m.group(1)] = p
        return f'{m.group(1)} = "127.0.0.1:{p}"'

    text = re.sub(r'^(\w*listen) = "[^"]+"', port, text, flags=re.M)
    run.http_port = ports["http_listen"]
    run.collector_config.write_text(text)
    run.collector_config.chmod(0o644)
    run.start_collector()
    assert (COLLECTOR_DATA / "tls" / "ca.key").stat().st_uid == pwd.getpwnam("warden-collector").pw_uid

    # A log file as the agent would find auth.log: 0640 root:adm.
    run.app_log.parent.mkdir(mode=0o755)
    run.app_log.write_text("")
    os.chown(run.app_log, 0, grp.getgrnam("adm").gr_gid)
    run.app_log.chmod(0o640)

    # The admin's local changes to the agent's conffile: faster intervals, one log file read
    # from its first line (so no marker line can fall before the agent's first look).
    conf = AGENT_CONF.read_text()
    logs = f'paths = ["{run.app_log}"]\nstart_at = "beginning"\njournal = "off"\n'
    for header, lines in (("[transport]", "heartbeat_seconds = 2.0\nbackoff_max_seconds = 2.0\n"),
                          ("[probes.system]", "interval_seconds = 2.0\n"),
                          ("[probes.logs]", logs)):
        assert conf.count(f"\n{header}\n") == 1
        conf = conf.replace(f"\n{header}\n", f"\n{header}\n# local change (tests/test_packaging.py)\n{lines}")
    AGENT_CONF.write_text(conf)
    run.local_agent_conf = conf

    # Fleet enrollment as documented, run by root: the wrappers switch to the service users.
    token = sh("/usr/bin/warden-collector", "--config", run.collector_config, "token", "create",
               "--labels", "room=A,rack=3", "--ttl", "1h", "--quiet", cwd="/").stdout.strip()
    out = sh("/usr/bin/warden-agent", "enroll", "--collector", f"127.0.0.1:{ports['enroll_listen']}",
             "--token", token, "--host-id", HOST_ID, cwd="/").stdout
    assert f"enrolled as {HOST_ID}" in out
    agent_uid = pwd.getpwnam("warden-agent").pw_uid
    for name in ("agent.pem", "ca.crt", "identity.json"):
        st = (AGENT_STATE / name).stat()
        assert (st.st_uid, st.st_mode & 0o777) == (agent_uid, 0o600), name
    collector_uid = pwd.getpwnam("warden-collector").pw_uid
    assert all(p.stat().st_uid == collector_uid for p in COLLECTOR_DATA.rglob("*")), \
        "root's token create left files the collector cannot own"

    run.start_agent()
    run.write_marker("running")

    def host_reporting() -> dict[str, Any]:
        assert run.agent is not None
        run.agent.check_alive()
        h = http_get(run.http_port, f"/api/v1/hosts/{HOST_ID}")
        return h if h["latest_metrics"] and h["host"]["last_seen_ns"] else {}

    host = wait_for(host_reporting, 60, 0.5, what="the enrolled host's metrics at the collector")
    assert host["host"]["labels"] == {"room": "A", "rack": "3"}
    wait_for(lambda: run.marker_count("running") == 1, 60, 0.5, what="a log line read as group adm")

    # What the unit's groups and capabilities are for, seen in the agent's own reports.
    def inventory() -> dict[str, Any]:
        sections = http_get(run.http_port, f"/api/v1/hosts/{HOST_ID}/inventory")["sections"]
        return sections if "accounts" in sections else {}

    sections = wait_for(inventory, 60, 0.5, what="the accounts inventory")
    assert sections["accounts"]["data"]["shadow_readable"] is True  # group shadow
    errors = [e for e in run.events() if e["kind"] == "logs.source_error"]
    assert not errors, errors  # /var/log/btmp (root:utmp 0660) read through CAP_DAC_READ_SEARCH


def test_upgrade_keeps_state_config_and_records(step: Run) -> None:
    run = step
    v2 = run.versions[1]
    # As the packages' prerm scripts do under systemd: the collector's upgrade stops it first.
    # The agent goes on spooling what it produces, then stops for its own upgrade.
    run.stop("collector")
    run.write_marker("collector-down")

    def pending() -> int:
        out = sh("/usr/bin/warden-agent", "status", cwd="/").stdout
        return json.loads(out)["spool"]["pending_records"]

    wait_for(lambda: pending() > 0, 30, 0.5, what="records waiting in the spool")
    time.sleep(2)  # the marker line read and spooled (logs probe: every second)
    run.stop("agent")
    run.write_marker("agent-down")  # read from the saved position after the restart
    spooled = pending()
    assert spooled > 0

    state = fingerprint(AGENT_STATE, COLLECTOR_DATA / "tls")
    state = {k: v for k, v in state.items() if not k.startswith(str(AGENT_STATE / "spool.db"))
             and "/probes/" not in k}
    assert str(AGENT_STATE / "agent.pem") in state and str(COLLECTOR_DATA / "tls" / "ca.key") in state
    rules_before = {p.name: sha256(p) for p in Path("/etc/warden/rules").glob("*.yml")}
    spool_id = json.loads(sh("/usr/bin/warden-agent", "status", cwd="/").stdout)["spool"]["spool_id"]

    dpkg("-i", "--force-confold", run.debs[v2]["warden-agent"], run.debs[v2]["warden-collector"])
    for pkg in PACKAGES:
        assert status(pkg) == f"install ok installed {v2}"

    # Kept: identity, key, certificate, CA and keys of the collector, the spool, the config.
    after = {k: sha256(Path(k)) for k in state}
    assert after == state
    assert AGENT_CONF.read_text() == run.local_agent_conf
    assert {p.name: sha256(p) for p in Path("/etc/warden/rules").glob("*.yml")} == rules_before
    assert (AGENT_CONF.stat().st_mode & 0o777, grp.getgrgid(AGENT_CONF.stat().st_gid).gr_name) == \
        (0o640, "warden-agent")
    status_after = json.loads(sh("/usr/bin/warden-agent", "status", cwd="/").stdout)
    assert status_after["host_id"] == HOST_ID
    assert status_after["spool"]["spool_id"] == spool_id
    assert status_after["spool"]["pending_records"] == spooled
    hosts = sh("/usr/bin/warden-collector", "--config", run.collector_config, "host", "list", cwd="/").stdout
    assert HOST_ID in hosts

    # Restarted (postinst would under systemd): the spool drains, nothing is lost or doubled.
    run.start_collector()
    run.start_agent()
    wait_for(lambda: pending() == 0, 90, 0.5, what="the spool to drain after the upgrade")
    for name in ("running", "collector-down", "agent-down"):
        wait_for(lambda n=name: run.marker_count(n) == 1, 60, 0.5, what=f"log marker {name!r} exactly once")
    h = http_get(run.http_port, f"/api/v1/hosts/{HOST_ID}")["host"]
    assert h["agent_version"] and h["last_seen_seconds_ago"] < 30


def test_changed_conffile_keeps_local_edit(step: Run) -> None:
    """A new version whose packaged agent.toml changed, installed non-interactively with
    --force-confold: the admin's file stays, the packaged one lands beside it."""
    run = step
    run.stop("agent")
    v2 = run.versions[1]
    v3 = v2 + "+conf"
    work = run.tmp / "v3"
    work.mkdir()
    sh("dpkg-deb", "-R", run.debs[v2]["warden-agent"], work / "root")
    conf = work / "root" / "etc" / "warden" / "agent.toml"
    conf.write_text(conf.read_text() + "\n# a line added by a later package version\n")
    control = work / "root" / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {v3}", control.read_text(), flags=re.M))
    deb = work / "warden-agent_v3.deb"
    sh("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", work / "root", deb)
    res = dpkg("-i", "--force-confold", deb)
    assert status("warden-agent") == f"install ok installed {v3}"
    assert AGENT_CONF.read_text() == run.local_agent_conf, res.stdout
    assert Path(f"{AGENT_CONF}.dpkg-dist").read_text().endswith("# a line added by a later package version\n")
    run.start_agent()
    wait_for(lambda: http_get(run.http_port, f"/api/v1/hosts/{HOST_ID}")["host"]["last_seen_seconds_ago"] < 5,
             60, 0.5, what="the agent reporting again")


def test_remove_keeps_state_and_config(step: Run) -> None:
    run = step
    run.stop("agent")
    run.stop("collector")
    identity = sha256(AGENT_STATE / "identity.json"), sha256(COLLECTOR_DATA / "tls" / "ca.crt")
    dpkg("-r", *PACKAGES)
    for pkg in PACKAGES:
        assert status(pkg).startswith("deinstall ok config-files")
        assert not Path(f"/usr/bin/{pkg}").exists() and not Path(f"/opt/{pkg}").exists()
        assert not (UNIT_DIR / f"{pkg}.service").exists()
        pwd.getpwnam(pkg)  # the users stay with the files they own
    assert (sha256(AGENT_STATE / "identity.json"), sha256(COLLECTOR_DATA / "tls" / "ca.crt")) == identity
    assert AGENT_CONF.read_text() == run.local_agent_conf
    assert COLLECTOR_CONF.exists() and Path("/etc/warden/rules/disk.yml").exists()


def test_purge_leaves_the_machine_as_found(step: Run) -> None:
    dpkg("-P", *PACKAGES)
    for pkg in PACKAGES:
        assert status(pkg) in ("", "unknown ok not-installed") or "not-installed" in status(pkg)
        with pytest.raises(KeyError):
            pwd.getpwnam(pkg)
        with pytest.raises(KeyError):
            grp.getgrnam(pkg)
    for path in ("/etc/warden", AGENT_STATE, COLLECTOR_DATA, "/opt/warden-agent", "/opt/warden-collector"):
        assert not Path(path).exists(), path
    for f in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/var/lib/dpkg/statoverride"):
        assert "warden" not in Path(f).read_text(), f"{f} still mentions warden"
    leftovers = [str(p) for d in ("/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled",
                                  "/var/lib/systemd/deb-systemd-helper-masked")
                 for p in Path(d).rglob("*warden*")]
    assert not leftovers, leftovers


# ---- under a real systemd --------------------------------------------------------------------

class Container:
    """This machine's own OS booted by systemd-nspawn on a throwaway overlay of / (nothing it
    writes reaches the host), with only a loopback network: a real systemd 252 as PID 1, so
    the units run with every setting in force (namespaces, seccomp, devices, capabilities)."""

    TMP = Path("/warden-pkgtest")  # the test's directory, inside

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.base = Path(tempfile.mkdtemp(prefix="warden-pkgtest-ct-", dir="/var/tmp"))
        self.root = self.base / "root"
        self.log = tmp / "container.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0

    def __enter__(self) -> Container:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> Container:
        for d in ("upper", "work", "root"):
            (self.base / d).mkdir()
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir=/,upperdir={self.base / 'upper'},workdir={self.base / 'work'}", self.root)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-D", self.root, "--private-network", "--register=no", "--keep-unit",
                 "-M", "warden-pkgtest", "--capability=CAP_SYS_RAWIO", "--console=passive",
                 f"--bind-ro={self.tmp}:{self.TMP}",  # its /tmp is its own: the packages go here
                 "-b", "systemd.unit=basic.target"],  # not the host's own services
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def booted() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.log.read_text()[-2000:]}")
            # The container's PID 1 is systemd-nspawn's child once it has exec'd systemd
            # (before that, the child is a short-lived helper).
            self.init_pid = 0
            for kid in sh("pgrep", "-P", str(self.proc.pid), check=False).stdout.split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{kid}/comm").read_text().strip() == "systemd":
                        self.init_pid = int(kid)
            if not self.init_pid:
                return False
            state = self.sh("systemctl", "is-system-running", check=False).stdout.strip()
            return state in ("running", "degraded")

        wait_for(booted, 120, 0.5, what="the container's systemd to finish booting")
        # Some images forbid starting services from maintainer scripts (policy-rc.d exit 101);
        # a real host does not.
        self.sh("rm", "-f", "/usr/sbin/policy-rc.d")
        return self

    def sh(self, *argv: str | Path, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        env = kw.pop("env", {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"})
        return sh("nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-n", "-p", "-C", "--",
                  "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv, check=check, cwd="/", **kw)

    def show(self, unit: str, prop: str) -> str:
        return self.sh("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def get(self, path: str) -> Any:
        code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:4512{path}').read().decode())"
        return json.loads(self.sh("/usr/bin/python3", "-I", "-c", code).stdout)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # systemd-nspawn asks the container's systemd to halt
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for _ in range(20):
            if subprocess.run(["umount", self.root], capture_output=True).returncode == 0 \
                    or not os.path.ismount(self.root):
                break
            time.sleep(0.5)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree("/run/systemd/nspawn", ignore_errors=True)


@pytest.mark.skipif(shutil.which("systemd-nspawn") is None,
                    reason="systemd-nspawn not installed (apt-get install systemd-container): "
                           "the units were checked with systemd-analyze and setpriv only")
def test_units_under_real_systemd(run: Run) -> None:
    """Install, enroll, upgrade, reload, remove and purge with systemd as PID 1: postinst
    starts the collector, the agent waits for its identity, and both run under every
    hardening setting of their units."""
    if len(run.versions) < 2 or not all(d.exists() for v in run.versions for d in run.debs[v].values()):
        pytest.skip("the packages were not built")
    v1, v2 = run.versions
    debs = {v: {p: Container.TMP / d.relative_to(run.tmp) for p, d in run.debs[v].items()}
            for v in run.versions}
    with Container(run.tmp) as ct:
        ct.sh("dpkg", "-i", debs[v1]["warden-agent"], debs[v1]["warden-collector"])
        wait_for(lambda: ct.get("/healthz")["status"] == "ok", 60, 0.5,
                 what="the collector, started by postinst")
        assert ct.show("warden-collector.service", "ActiveState") == "active"
        # Not enrolled: skipped by its condition, not failed, not restarting.
        assert ct.show("warden-agent.service", "ActiveState") == "inactive"
        assert ct.show("warden-agent.service", "ConditionResult") == "no"

        token = ct.sh("warden-collector", "token", "create", "--labels", "room=A,rack=3",
                      "--quiet").stdout.strip()
        ct.sh("warden-agent", "enroll", "--collector", "localhost:4510", "--token", token,
              "--host-id", HOST_ID)
        ct.sh("systemctl", "enable", "--now", "warden-agent")

        def reporting() -> bool:
            if not ct.get(f"/api/v1/hosts/{HOST_ID}")["latest_metrics"]:
                return False
            sections = ct.get(f"/api/v1/hosts/{HOST_ID}/inventory")["sections"]
            return "accounts" in sections and "packages" in sections  # dpkg/apt read in the sandbox

        wait_for(reporting, 90, 1, what="the agent's metrics and inventory, sent from inside its sandbox")
        inventory = ct.get(f"/api/v1/hosts/{HOST_ID}/inventory")["sections"]
        assert inventory["accounts"]["data"]["shadow_readable"] is True

        def proc_status(unit: str) -> dict[str, str]:
            pid = ct.show(unit, "MainPID")
            text = ct.sh("cat", f"/proc/{pid}/status").stdout
            return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}

        agent, collector = proc_status("warden-agent.service"), proc_status("warden-collector.service")
        assert int(agent["CapAmb"], 16) == int(agent["CapEff"], 16) == (1 << 2) | (1 << 17)
        assert int(collector["CapEff"], 16) == int(collector["CapBnd"], 16) == 0
        for st in (agent, collector):
            assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
        bad = [e for e in ct.get(f"/api/v1/events?host={HOST_ID}&limit=1000")["events"]
               if e["kind"] in ("agent.probe_error", "logs.source_error")]
        assert not bad, bad  # no probe tripped over the sandbox
        for unit in ("warden-agent", "warden-collector"):
            errors = ct.sh("journalctl", "-u", unit, "-p", "err", "--no-pager", "-q").stdout
            assert not errors.strip(), errors

        ct.sh("systemctl", "reload", "warden-collector")  # ExecReload: SIGHUP reloads the rules
        assert ct.show("warden-collector.service", "ActiveState") == "active"

        identity = sha256(ct.root / "var/lib/warden-agent/agent.pem")
        def main_pids() -> tuple[str, str]:
            return ct.show("warden-agent.service", "MainPID"), ct.show("warden-collector.service", "MainPID")

        pids = main_pids()
        ct.sh("dpkg", "-i", debs[v2]["warden-agent"], debs[v2]["warden-collector"])
        assert all(new != old for new, old in zip(main_pids(), pids, strict=True))  # prerm/postinst
        assert ct.show("warden-agent.service", "ActiveState") == "active"
        assert ct.show("warden-collector.service", "ActiveState") == "active"
        assert sha256(ct.root / "var/lib/warden-agent/agent.pem") == identity
        spool = lambda: json.loads(ct.sh("warden-agent", "status").stdout)["spool"]  # noqa: E731
        wait_for(lambda: spool()["pending_records"] == 0 and spool()["last_seq"] > 0, 60, 1,
                 what="the agent reconnected after the upgrade, spool drained")

        ct.sh("dpkg", "-r", "warden-agent", "warden-collector")
        assert ct.show("warden-agent.service", "ActiveState") in ("inactive", "")
        assert (ct.root / "var/lib/warden-agent/agent.pem").exists()
        ct.sh("dpkg", "-P", "warden-agent", "warden-collector")
        assert not (ct.root / "var/lib/warden-agent").exists()
        assert ct.sh("getent", "passwd", "warden-agent", check=False).returncode != 0
