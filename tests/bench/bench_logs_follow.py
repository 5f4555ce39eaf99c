"""CPU the agent adds to follow a log growing at 500 lines/s: a real `warden-agent run` with only
the logs probe (default settings, 1 s interval) against a real collector, sampled with psutil.
The same agent is measured first with the log idle (the baseline), then while a writer appends
auth.log-style lines at the target rate; every line must reach the collector.

    .venv/bin/python -m tests.bench.bench_logs_follow [--seconds 60] [--rate 500] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import psutil

from tests.harness import AgentProc, CollectorProc, wait_for
from warden.agent.probes import registered

# Shapes of a busy sshd host's auth.log (the parser's common cases: typed and generic).
_TEMPLATES = (
    "{ts} bastion sshd[{pid}]: Failed password for invalid user {user} from 203.0.113.{a} port {port} ssh2",
    "{ts} bastion sshd[{pid}]: Accepted publickey for deploy from 198.51.100.{a} port {port} ssh2: "
    "ED25519 SHA256:Jm1vbmV5cGVubnlzdGVhbGluZ2tleWZpbmdlcnByaW50",
    "{ts} bastion sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "{ts} bastion sshd[{pid}]: Connection closed by authenticating user root 192.0.2.{a} port {port} "
    "[preauth]",
    "{ts} bastion CRON[{pid}]: pam_unix(cron:session): session closed for user root",
    "{ts} bastion sudo:   deploy : TTY=pts/0 ; PWD=/srv/app ; USER=root ; COMMAND=/usr/bin/systemctl "
    "restart app",
    "{ts} bastion app[{pid}]: request id={port} path=/api/v1/items status=200 duration_ms={a}",
)


class Writer(threading.Thread):
    def __init__(self, path: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        self.stop = threading.Event()
        self.written = 0
        self.rng = random.Random(1)

    def run(self) -> None:
        tick = 0.01  # 100 small appends a second, as a busy daemon writes
        start = time.monotonic()
        with open(self.path, "a", buffering=1) as f:
            while not self.stop.is_set():
                due = int((time.monotonic() - start) * self.rate)
                ts = time.strftime("%b %e %H:%M:%S")
                while self.written < due:
                    self.written += 1
                    f.write(self.rng.choice(_TEMPLATES).format(
                        ts=ts, pid=self.rng.randint(1000, 60000), user=f"user{self.written}",
                        a=self.rng.randint(1, 254), port=self.rng.randint(1024, 65535)) + "\n")
                time.sleep(tick)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _window(proc: psutil.Process, seconds: float) -> float:
    """CPU % of one core over a window of `seconds`."""
    c0, t0 = _cpu(proc), time.monotonic()
    time.sleep(seconds)
    return (_cpu(proc) - c0) / (time.monotonic() - t0) * 100


def measure(seconds: float, rate: float, root: Path) -> dict[str, float]:
    collector = CollectorProc(root / "collector")
    collector.start()
    log = root / "auth.log"
    log.touch()
    disabled = {f"probes.{n}": {"enabled": False} for n in registered() if n != "logs"}
    # Default logs settings but for what it follows; default transport timings.
    agent = AgentProc(root / "agent", collector, "bench-logs",
                      transport={"backoff_initial_seconds": 0.5, "backoff_max_seconds": 60.0,
                                 "heartbeat_seconds": 15.0},
                      **disabled, **{"probes.logs": {"paths": [str(log)], "journal": "off", "wtmp": "",
                                                      "btmp": ""}})
    agent.enroll()
    agent.start()
    writer = Writer(log, rate)
    try:
        assert agent.proc is not None
        proc = psutil.Process(agent.proc.pid)
        wait_for(lambda: collector.host("bench-logs") and collector.host("bench-logs")["latest_metrics"],
                 30, what="the agent's first report")
        time.sleep(min(5.0, seconds / 4))  # start-up is not the steady state
        idle = _window(proc, seconds)
        rss_idle = proc.memory_info().rss / 2**20
        writer.start()
        time.sleep(2.0)  # let the follower reach its steady state
        busy = _window(proc, seconds)
        rss_busy = proc.memory_info().rss / 2**20
        writer.stop.set()
        writer.join(5)
        lines = writer.written

        def delivered() -> int:
            from warden.collector.store.sqlite import SqliteStore
            store = SqliteStore(collector.root / "data" / "warden.db")
            try:
                return sum(1 for e in store.events("bench-logs", 0, 10**7) if e.event.source == str(log))
            finally:
                store.close()

        got = wait_for(lambda: (n := delivered()) >= lines and n, 60, 0.5, what=f"{lines} lines delivered")
    finally:
        writer.stop.set()
        agent.stop()
        collector.stop()
    return {"seconds": seconds, "rate_lines_per_s": rate, "lines_written": lines, "lines_delivered": got,
            "cpu_percent_idle": round(idle, 3), "cpu_percent_following": round(busy, 3),
            "cpu_percent_added": round(busy - idle, 3), "rss_mb_idle": round(rss_idle, 1),
            "rss_mb_following": round(rss_busy, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each measured window")
    ap.add_argument("--rate", type=float, default=500.0, help="lines per second")
    ap.add_argument("--smoke", action="store_true", help="4 s windows, for CI")
    args = ap.parse_args()
    seconds = 4.0 if args.smoke else args.seconds
    with tempfile.TemporaryDirectory(prefix="warden-bench-logs-") as d:
        r = measure(seconds, args.rate, Path(d))
    print(f"agent following one log at {r['rate_lines_per_s']:g} lines/s, {r['seconds']:g} s windows "
          "(logs probe only, default settings)")
    print(f"  CPU idle         {r['cpu_percent_idle']:8.2f} % of one core")
    print(f"  CPU following    {r['cpu_percent_following']:8.2f} % of one core")
    print(f"  CPU added        {r['cpu_percent_added']:8.2f} % of one core")
    print(f"  RSS              {r['rss_mb_idle']:.1f} MB idle, {r['rss_mb_following']:.1f} MB following")
    print(f"  lines            {r['lines_written']} written, {r['lines_delivered']} at the collector")
    print(json.dumps({"bench": "logs_follow", **r}))


if __name__ == "__main__":
    main()
