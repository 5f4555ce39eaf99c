"""`warden-agent`: enroll with a collector, run, and inspect the agent's state."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/warden/agent.toml")


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return args.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def cmd_enroll(args: argparse.Namespace) -> int:
    from warden.agent.config import load_config
    from warden.agent.enroll import enroll

    cfg = load_config(_config_path(args))
    identity = enroll(args.collector, args.token, cfg.agent.state_dir, host_id=args.host_id)
    print(f"enrolled as {identity.host_id}; reporting to {identity.report_target}; "
          f"state in {cfg.agent.state_dir}")
    if identity.labels:
        print(f"labels: {json.dumps(identity.labels)}")
    return 0


def _without_openssl() -> None:
    """Keep Python's OpenSSL bindings out of the long-running agent: gRPC carries its own
    TLS (BoringSSL) and builtin sha256 serves content hashes, while `ssl` (which asyncio
    imports if it can) and OpenSSL-backed `hashlib` map libssl and libcrypto: ~4 MB of RSS,
    measured with tests/bench/bench_agent.py. Must run before anything imports them."""
    for name in ("ssl", "_ssl", "_hashlib"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None makes import fail


def cmd_run(args: argparse.Namespace) -> int:
    _without_openssl()
    import asyncio

    from warden.agent import jsonlog
    from warden.agent.config import load_config
    from warden.agent.run import run

    cfg = load_config(_config_path(args))
    jsonlog.setup(args.log_level, args.log_format)
    asyncio.run(run(cfg))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from warden.agent import identity as ident
    from warden.agent.config import load_config
    from warden.agent.spool import Spool

    cfg = load_config(_config_path(args))
    identity = ident.load(cfg.agent.state_dir)
    out: dict[str, object] = {"host_id": identity.host_id, "collector": identity.report_target,
                              "labels": identity.labels, "cert_not_after": identity.cert_not_after}
    if cfg.spool_path.exists():
        spool_id, stats = Spool.peek_stats(cfg.spool_path)  # works while the agent runs
        out["spool"] = {"spool_id": spool_id, **vars(stats)}
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    from warden.agent.config import render_example

    print(render_example(), end="")
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized as it sizes itself but without importing shutil (with bz2
    and lzma: half a megabyte that the long-running agent would keep)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="warden-agent", description=__doc__, formatter_class=fmt)
    common = argparse.ArgumentParser(add_help=False, formatter_class=fmt)
    common.add_argument("--config", type=Path, default=None,
                        help=f"TOML config file (default: {DEFAULT_CONFIG} when present)")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("enroll", parents=[common], help="enroll with a collector using a one-time token",
                       formatter_class=fmt)
    e.add_argument("--collector", required=True, help="the collector's enrollment address HOST:PORT")
    e.add_argument("--token", required=True, help="token from `warden-collector token create`")
    e.add_argument("--host-id", default=None, help="identity to request (default: this host's name)")
    e.set_defaults(func=cmd_enroll)

    r = sub.add_parser("run", parents=[common], help="run in the foreground", formatter_class=fmt)
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    r.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one object per line (time, level, logger, message)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("status", parents=[common], help="identity and spool state", formatter_class=fmt)
    s.set_defaults(func=cmd_status)

    c = sub.add_parser("config", help="configuration", formatter_class=fmt).add_subparsers(
        dest="config_cmd", required=True)
    c.add_parser("example", help="print every option with its default", formatter_class=fmt).set_defaults(
        func=cmd_config_example)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        from warden.agent.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"warden-agent: configuration: {exc}", file=sys.stderr)
            return 2
        from warden.agent.enroll import EnrollError
        from warden.agent.identity import NotEnrolled
        from warden.agent.spool import SpoolError

        if isinstance(exc, EnrollError | NotEnrolled | SpoolError):
            print(f"warden-agent: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
