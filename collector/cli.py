"""`warden-collector`: serve, issue enrollment tokens, list and revoke hosts."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path

from warden.collector.config import CollectorConfig, ConfigError, default_config_path, load_config


def _config(args: argparse.Namespace) -> CollectorConfig:
    return load_config(args.config or default_config_path())


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_serve(args: argparse.Namespace) -> int:
    from warden.agent import jsonlog
    from warden.collector.server import serve

    cfg = _config(args)
    jsonlog.setup(cfg.collector.log_level, cfg.collector.log_format)
    asyncio.run(serve(cfg))
    return 0


def _open(cfg: CollectorConfig):  # noqa: ANN202 - returns (pki, store)
    from warden.collector.pki import CollectorPKI
    from warden.collector.store.sqlite import SqliteStore

    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = CollectorPKI.load_or_create(cfg.tls_dir, list(cfg.tls.sans),
                                      server_cert_days=cfg.tls.server_cert_days)
    return pki, SqliteStore(cfg.db_path)


def cmd_token_create(args: argparse.Namespace) -> int:
    from warden.collector import tokens

    cfg = _config(args)
    ttl = tokens.parse_ttl(args.ttl)
    labels = tokens.parse_labels(args.labels)
    pki, store = _open(cfg)
    try:
        tok = tokens.new_token(pki.enroll_pin)
        now = time.time_ns()
        store.add_token(tok.token_id, tok.secret_hash, labels, now, now + ttl * 10**9)
    finally:
        store.close()
    if args.quiet:
        print(tok.token)
        return 0
    port = cfg.collector.enroll_listen.rpartition(":")[2]
    print(f"token:   {tok.token}")
    print(f"expires: {_when(now + ttl * 10**9)} (single use)")
    if labels:
        print(f"labels:  {json.dumps(labels)}")
    print(f"enroll:  warden-agent enroll --collector {cfg.tls.sans[0]}:{port} --token {tok.token}")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    _, store = _open(_config(args))
    try:
        now = time.time_ns()
        print(f"{'TOKEN ID':14} {'STATE':8} {'EXPIRES':21} {'USED BY':24} LABELS")
        for t in store.list_tokens():
            state = "used" if t.used_ns else ("expired" if t.expires_ns <= now else "valid")
            print(f"{t.token_id:14} {state:8} {_when(t.expires_ns):21} {t.used_by or '-':24} "
                  f"{json.dumps(t.labels) if t.labels else '-'}")
    finally:
        store.close()
    return 0


def cmd_host_list(args: argparse.Namespace) -> int:
    _, store = _open(_config(args))
    try:
        print(f"{'HOST':28} {'STATE':8} {'LAST SEEN':21} {'AGENT':10} {'OS':30} LABELS")
        for h in store.list_hosts():
            print(f"{h.host_id:28} {'revoked' if h.revoked else 'active':8} {_when(h.last_seen_ns):21} "
                  f"{h.agent_version or '-':10} {h.os or '-':30} {json.dumps(h.labels) if h.labels else '-'}")
    finally:
        store.close()
    return 0


def cmd_host_revoke(args: argparse.Namespace) -> int:
    _, store = _open(_config(args))
    try:
        n = store.revoke_host(args.host, time.time_ns())
    except KeyError:
        print(f"warden-collector: unknown host {args.host!r} (see: warden-collector host list)",
              file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"revoked {n} certificate(s) of {args.host}; a running collector closes its streams now")
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from warden.collector.rules.loader import check

    paths = args.paths or [_config(args).rules_dir]
    ruleset, errors = check(paths)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    assert ruleset is not None
    kinds: dict[str, int] = {}
    for r in ruleset.rules:
        kinds[r.common.kind] = kinds.get(r.common.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"OK: {len(ruleset.rules)} rules ({detail or 'none'}) in {len(ruleset.files)} file(s)")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from warden.collector.rules.spec import RuleError
    from warden.collector.rules.testing import run_file

    passed = failed = broken = 0
    for path in args.files:
        try:
            results = run_file(Path(path))
        except (RuleError, OSError) as exc:
            print(f"{path}: ERROR {exc}", file=sys.stderr)
            broken += 1
            continue
        for r in results:
            if r.ok:
                passed += 1
                print(f"  PASS {path}: {r.name}")
            else:
                failed += 1
                print(f"  FAIL {path}: {r.name}")
                for f in r.failures:
                    print(f"       {f}")
    summary = f"{passed}/{passed + failed} tests passed"
    if failed:
        summary += f", {failed} failed"
    if broken:
        summary += f", {broken} file(s) could not run"
    print(summary)
    return 1 if failed or broken else 0


def _alerts_stub(args: argparse.Namespace):  # noqa: ANN202 - (config, stub, channel)
    from warden.collector import operator
    from warden.v1 import alerts_pb2_grpc

    cfg = _config(args)
    ch = operator.channel(cfg, operator.cli_files(cfg), args.address)
    return cfg, alerts_pb2_grpc.AlertsStub(ch), ch


def _alert_line(a) -> str:  # noqa: ANN001 - an alerts_pb2.Alert
    flags = []
    if a.acknowledged_by:
        flags.append(f"acked by {a.acknowledged_by}")
    if a.silenced_by:
        flags.append("silenced")
    if a.inhibited:
        flags.append("inhibited")
    since = _when(a.fired_unix_nano or a.starts_unix_nano)
    return (f"{a.id:>6} {a.state:8} {a.severity:8} {since:21} {a.annotations.get('summary', a.rule)}"
            + (f"  [{', '.join(flags)}]" if flags else ""))


def cmd_alerts(args: argparse.Namespace) -> int:
    """List open alerts, or follow the feed (resuming after --after POSITION)."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from warden.v1 import alerts_pb2

    _, stub, ch = _alerts_stub(args)
    match = dict(kv.split("=", 1) for kv in args.match)
    try:
        if not args.follow:
            resp = stub.ListAlerts(alerts_pb2.ListAlertsRequest(match=match), timeout=30)
            if args.json:
                for a in resp.alerts:
                    print(json.dumps(MessageToDict(a, preserving_proto_field_name=True), sort_keys=True))
            else:
                print(f"{'ID':>6} {'STATE':8} {'SEVERITY':8} {'SINCE':21} SUMMARY")
                for a in resp.alerts:
                    print(_alert_line(a))
            return 0
        req = alerts_pb2.WatchAlertsRequest(after_position=max(args.after, 0),
                                            from_now=args.after < 0 and not args.all, match=match)
        for e in stub.WatchAlerts(req):
            if args.json:
                print(json.dumps({"position": e.position, "time": _when(e.time_unix_nano), "kind": e.kind,
                                  "gap": e.gap, **json.loads(e.detail_json)}, sort_keys=True), flush=True)
            elif e.kind == "alert":
                what = json.loads(e.detail_json).get("what", "")
                print(f"[{e.position}] {_when(e.time_unix_nano)} {what:14} {_alert_line(e.alert)}",
                      flush=True)
            else:
                print(f"[{e.position}] {_when(e.time_unix_nano)} silence {e.detail_json}", flush=True)
    except grpc.RpcError as exc:
        print(f"warden-collector: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        ch.close()
    return 0


def cmd_alerts_ack(args: argparse.Namespace) -> int:
    import grpc

    from warden.v1 import alerts_pb2

    _, stub, ch = _alerts_stub(args)
    try:
        a = stub.Acknowledge(alerts_pb2.AcknowledgeRequest(alert_id=args.id, comment=args.comment,
                                                           remove=args.remove), timeout=30)
    except grpc.RpcError as exc:
        print(f"warden-collector: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        ch.close()
    print(_alert_line(a))
    return 0


def cmd_alerts_silence(args: argparse.Namespace) -> int:
    import re

    import grpc

    from warden.collector import tokens
    from warden.v1 import alerts_pb2

    matchers = []
    for m in args.match:
        mm = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(=~|!=|=)(.*)", m)
        if not mm:
            print(f"warden-collector: bad matcher {m!r}: use label=value, label=~regex or label!=value",
                  file=sys.stderr)
            return 2
        matchers.append(alerts_pb2.SilenceMatcher(label=mm.group(1), op=mm.group(2), value=mm.group(3)))
    now = time.time_ns()
    _, stub, ch = _alerts_stub(args)
    try:
        s = stub.CreateSilence(alerts_pb2.CreateSilenceRequest(
            matchers=matchers, starts_unix_nano=now,
            ends_unix_nano=now + tokens.parse_ttl(args.duration) * 10**9, comment=args.comment), timeout=30)
    except grpc.RpcError as exc:
        print(f"warden-collector: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        ch.close()
    print(f"silence {s.id} by {s.author} until {_when(s.ends_unix_nano)}")
    return 0


def cmd_operator_cert(args: argparse.Namespace) -> int:
    from warden.collector import operator

    cfg = _config(args)
    pki, store = _open(cfg)
    try:
        files = operator.issue(pki, store, args.name, args.out)
    finally:
        store.close()
    print(f"operator {args.name}: key {files.key} (0600), certificate {files.cert}, CA {files.ca}")
    return 0


def cmd_operator_revoke(args: argparse.Namespace) -> int:
    _, store = _open(_config(args))
    try:
        n = store.revoke_operator(args.name, time.time_ns())
    finally:
        store.close()
    print(f"revoked {n} certificate(s) of operator {args.name}")
    return 0 if n else 2


def cmd_incident_report(args: argparse.Namespace) -> int:
    from warden.collector.alerts.incident import render_report
    from warden.collector.alerts.store import AlertStore
    from warden.collector.store.sqlite import SqliteStore

    cfg = _config(args)
    store = SqliteStore(cfg.db_path)
    alerts = AlertStore(cfg.alerts_db_path)
    try:
        text = render_report(alerts, store, args.alert_id, before_s=tokens_seconds(args.before),
                             after_s=tokens_seconds(args.after))
    except KeyError:
        print(f"warden-collector: no alert {args.alert_id}", file=sys.stderr)
        return 2
    finally:
        alerts.close()
        store.close()
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0


def tokens_seconds(text: str) -> int:
    from warden.collector.tokens import parse_ttl

    return parse_ttl(text)


def cmd_query(args: argparse.Namespace) -> int:
    """`query ...`: canned patch-compliance queries and read-only SQL on the store file."""
    from warden.collector.query.command import run

    cfg = _config(args)
    return run(args, cfg.db_path, cfg.alerts_db_path)


def _read_new_password(args: argparse.Namespace) -> str:
    """From stdin (one line) with --password-stdin, else prompted twice without echo."""
    import getpass

    from warden.collector.web.users import check_password_policy

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the passwords differ")
    check_password_policy(password)
    return password


def _users(args: argparse.Namespace):  # noqa: ANN202 - a UserStore
    from warden.collector.web.users import UserStore

    cfg = _config(args)
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return UserStore(cfg.web_db_path)


def cmd_user_add(args: argparse.Namespace) -> int:
    from warden.collector.web.users import valid_name

    if not valid_name(args.name):  # before asking for a password
        raise ValueError(f"invalid user name {args.name!r}: letters, digits and . _ @ - (at most 64)")
    password = _read_new_password(args)
    users = _users(args)
    try:
        users.add_user(args.name, args.role, password)
    finally:
        users.close()
    print(f"user {args.name} added ({args.role})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    users = _users(args)
    try:
        print(f"{'USER':24} {'ROLE':8} {'SESSIONS':8} {'CREATED':21} PASSWORD CHANGED")
        for u in users.users():
            print(f"{u.name:24} {u.role:8} {users.session_count(u.name):<8} {_when(u.created_ns):21} "
                  f"{_when(u.updated_ns)}")
    finally:
        users.close()
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    users = _users(args)
    try:
        users.remove_user(args.name)
    except KeyError:
        print(f"warden-collector: no user {args.name!r}", file=sys.stderr)
        return 2
    finally:
        users.close()
    print(f"user {args.name} removed; their sessions have ended")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    users = _users(args)
    try:
        if users.get(args.name) is None:
            print(f"warden-collector: no user {args.name!r}", file=sys.stderr)
            return 2
        users.set_password(args.name, _read_new_password(args))
    finally:
        users.close()
    print(f"password of {args.name} changed; their sessions have ended")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The running collector's health: streams, store, sink lag, rules, alerts, dashboard."""
    import urllib.error
    import urllib.request

    cfg = _config(args)
    host, _, port = cfg.collector.http_listen.rpartition(":")
    if not port:
        print("warden-collector: status needs [collector] http_listen", file=sys.stderr)
        return 2
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as r:
            h = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        h = json.loads(exc.read() or b"{}") or {"status": f"HTTP {exc.code}"}
    except OSError as exc:
        print(f"collector: not reachable at {host}:{port} ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(h, indent=2, sort_keys=True))
    else:
        counters = h.get("counters", {})
        store = h.get("store", {})
        print(f"collector: {h.get('status')}")
        print(f"  streams      {h.get('streams_active', 0)} open")
        if "error" in store:
            print(f"  store        FAILING: {store['error']}")
        else:
            print("  store        " + ", ".join(f"{k} {v}" for k, v in sorted(store.items())))
        sink = h.get("sink")
        if sink:
            print(f"  influx sink  lag {sink.get('lag_seconds')} s, {sink.get('buffered')} buffered, "
                  f"{sink.get('dropped_total')} dropped" + (f", last error: {sink['last_error']}"
                                                           if sink.get("last_error") else ""))
        rules = h.get("rules")
        if rules:
            state = "ok" if rules.get("last_reload_ok") else "LAST RELOAD FAILED (last good rules in force)"
            print(f"  rules        {rules.get('loaded')} from {rules.get('dir')}: {state}")
            for line in (rules.get("last_error") or "").splitlines()[:10]:
                print(f"               {line}")
            for rid, n in sorted((rules.get("rule_errors") or {}).items()):
                print(f"               rule {rid} raised {n} error(s)")
        print(f"  ingested     {int(counters.get('warden_collector_records_ingested_total', 0))} records, "
              f"{int(counters.get('warden_collector_batches_rejected_total', 0))} batches rejected")
        feed = int(counters.get("warden_collector_alert_feed_entries_total", 0))
        print(f"  alerts       {feed} feed entries")
        if "web" in h:
            print(f"  dashboard    {h['web'].get('error')}")
    return {"ok": 0, "degraded": 1}.get(h.get("status"), 2)


def cmd_backup_create(args: argparse.Namespace) -> int:
    from warden.collector import backup

    cfg = _config(args)
    info = backup.create(cfg.data_dir, args.file)
    print(f"backup {info.path}: {len(info.members)} files, {info.bytes} bytes (mode 0600: it holds the "
          f"CA's private key; keep a copy off-site)")
    return 0


def cmd_backup_verify(args: argparse.Namespace) -> int:
    from warden.collector import backup

    manifest = backup.verify(args.file)
    print(f"backup {args.file}: OK, {len(manifest['members'])} files, "
          f"taken {_when(manifest['created_ns'])} from {manifest.get('source')}")
    return 0


def cmd_backup_restore(args: argparse.Namespace) -> int:
    from warden.collector import backup

    cfg = _config(args)
    target = args.data_dir or cfg.data_dir
    manifest = backup.restore(args.file, target)
    print(f"restored {len(manifest['members'])} files taken {_when(manifest['created_ns'])} into {target}")
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    from warden.collector.config import render_example

    print(render_example())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warden-collector", description=__doc__)
    p.add_argument("--config", type=Path, help="TOML config file (default: $WARDEN_COLLECTOR_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the collector in the foreground")
    s.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    tok = sub.add_parser("token", help="enrollment tokens").add_subparsers(dest="token_cmd", required=True)
    t = tok.add_parser("create", help="issue a single-use, expiring enrollment token")
    t.add_argument("--ttl", default="24h", help="lifetime, e.g. 90s, 15m, 24h, 7d (default 24h)")
    t.add_argument("--labels", default="", help="labels for the enrolling host, e.g. room=A,rack=3")
    t.add_argument("--quiet", "-q", action="store_true", help="print only the token")
    t.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    t.set_defaults(func=cmd_token_create)
    t = tok.add_parser("list", help="list tokens (secrets are never shown again)")
    t.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    t.set_defaults(func=cmd_token_list)

    host = sub.add_parser("host", help="enrolled hosts").add_subparsers(dest="host_cmd", required=True)
    h = host.add_parser("list", help="list hosts")
    h.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    h.set_defaults(func=cmd_host_list)
    h = host.add_parser("revoke", help="revoke a host's certificates; its agent is refused at once")
    h.add_argument("host")
    h.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    h.set_defaults(func=cmd_host_revoke)

    rules = sub.add_parser("rules", help="alerting rules").add_subparsers(dest="rules_cmd", required=True)
    r = rules.add_parser("check", help="validate rule files; print file:line and what is wrong")
    r.add_argument("paths", nargs="*", type=Path,
                   help="rule files or directories (default: the configured dir)")
    r.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    r.set_defaults(func=cmd_rules_check)
    r = rules.add_parser("test", help="run rule unit tests (input series/events, expected alerts)")
    r.add_argument("files", nargs="+", type=Path)
    r.set_defaults(func=cmd_rules_test)

    a = sub.add_parser("alerts", help="list open alerts, or follow the alert feed")
    a.add_argument("--follow", "-f", action="store_true", help="follow the feed (WatchAlerts)")
    a.add_argument("--after", type=int, default=-1,
                   help="with --follow: resume after this feed position (default: only new changes)")
    a.add_argument("--all", action="store_true", help="with --follow: replay the whole kept feed first")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE")
    a.add_argument("--address", help="collector report address (default: from the config)")
    a.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    a.set_defaults(func=cmd_alerts)
    asub = a.add_subparsers(dest="alerts_cmd")
    x = asub.add_parser("ack", help="acknowledge an alert (author: your operator certificate)")
    x.add_argument("id", type=int)
    x.add_argument("--comment", default="")
    x.add_argument("--remove", action="store_true", help="withdraw the acknowledgement")
    x.add_argument("--address")
    x.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    x.set_defaults(func=cmd_alerts_ack)
    x = asub.add_parser("silence", help="silence matching alerts for a while")
    x.add_argument("match", nargs="+", help="label=value, label=~regex or label!=value")
    x.add_argument("--for", dest="duration", default="2h")
    x.add_argument("--comment", required=True)
    x.add_argument("--address")
    x.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    x.set_defaults(func=cmd_alerts_silence)

    op = sub.add_parser("operator", help="operator certificates for the alert feed").add_subparsers(
        dest="operator_cmd", required=True)
    o = op.add_parser("cert", help="issue a key and certificate for an operator or tool")
    o.add_argument("name")
    o.add_argument("--out", type=Path, required=True, help="directory for NAME.key, NAME.crt, ca.crt")
    o.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    o.set_defaults(func=cmd_operator_cert)
    o = op.add_parser("revoke", help="revoke an operator's certificates")
    o.add_argument("name")
    o.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    o.set_defaults(func=cmd_operator_revoke)

    inc = sub.add_parser("incident", help="incident write-ups").add_subparsers(dest="incident_cmd",
                                                                              required=True)
    i = inc.add_parser("report", help="Markdown timeline of an alert with related events and metrics")
    i.add_argument("alert_id", type=int)
    i.add_argument("--before", default="1h", help="context before the alert started (default 1h)")
    i.add_argument("--after", default="30m", help="context after it resolved (default 30m)")
    i.add_argument("--output", "-o", help="write to this file instead of stdout")
    i.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    i.set_defaults(func=cmd_incident_report)

    from warden.collector.query.command import add_parser as add_query_parser

    add_query_parser(sub, cmd_query)

    usr = sub.add_parser("user", help="dashboard users").add_subparsers(dest="user_cmd", required=True)
    u = usr.add_parser("add", help="add a dashboard user (prompts for the password)")
    u.add_argument("name")
    u.add_argument("--role", choices=("admin", "viewer"), required=True,
                   help="viewers read; admins also acknowledge and silence alerts")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    u.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    u.set_defaults(func=cmd_user_add)
    u = usr.add_parser("list", help="list dashboard users")
    u.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    u.set_defaults(func=cmd_user_list)
    u = usr.add_parser("remove", help="remove a dashboard user and end their sessions")
    u.add_argument("name")
    u.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    u.set_defaults(func=cmd_user_remove)
    u = usr.add_parser("passwd", help="change a user's password (ends their sessions)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    u.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    u.set_defaults(func=cmd_user_passwd)

    st = sub.add_parser("status", help="the running collector's health (exit 0 ok, 1 degraded, 2 down)")
    st.add_argument("--json", action="store_true")
    st.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    st.set_defaults(func=cmd_status)

    bk = sub.add_parser("backup", help="back up and restore the collector's state").add_subparsers(
        dest="backup_cmd", required=True)
    b = bk.add_parser("create", help="write a consistent backup (works while the collector runs)")
    b.add_argument("file", type=Path)
    b.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    b.set_defaults(func=cmd_backup_create)
    b = bk.add_parser("verify", help="check a backup's manifest, digests and databases")
    b.add_argument("file", type=Path)
    b.set_defaults(func=cmd_backup_verify)
    b = bk.add_parser("restore", help="restore into an empty data directory (collector stopped)")
    b.add_argument("file", type=Path)
    b.add_argument("--data-dir", type=Path, help="default: the configured data_dir")
    b.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    b.set_defaults(func=cmd_backup_restore)

    c = sub.add_parser("config", help="configuration").add_subparsers(dest="config_cmd", required=True)
    c.add_parser("example", help="print every option with its default").set_defaults(func=cmd_config_example)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as exc:
        print(f"warden-collector: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from warden.collector.backup import BackupError

        if not isinstance(exc, BackupError):
            raise
        print(f"warden-collector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
