"""Collector configuration (TOML). Every option, its default and its meaning is here;
`warden-collector config example` prints them as a commented TOML file.

Durations are strings such as "90s", "15m", "24h", "14d".
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.collector.tokens import parse_ttl
from warden.collector.translate import Limits


class ConfigError(ValueError):
    pass


_LIMITS = Limits()


def _doc(default: Any, doc: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class CollectorSection:
    data_dir: str = _doc("/var/lib/warden-collector", "Database, TLS material and state live here.")
    enroll_listen: str = _doc("0.0.0.0:4510", "Enrollment port (server-only TLS, token + CSR).")
    report_listen: str = _doc("0.0.0.0:4511", "Report port (mutual TLS: agents' client certificates).")
    http_listen: str = _doc("127.0.0.1:4512", "HTTP API, health and /metrics; empty to disable.")
    heartbeat: str = _doc("15s", "Heartbeat interval asked of agents.")
    log_level: str = _doc("info", "debug, info, warning or error.")
    log_format: str = _doc("text", "text, or json: one object per line (time, level, logger, message).")


@dataclass(frozen=True)
class TlsSection:
    sans: list[str] = _doc(["localhost", "127.0.0.1"],
                           "Names and addresses agents use to reach the collector (certificate SANs).")
    client_cert_lifetime: str = _doc("30d", "Lifetime of agents' certificates; agents renew before expiry.")
    server_cert_days: int = _doc(397, "Lifetime of the collector's server certificate, in days.")


@dataclass(frozen=True)
class LimitsSection:
    max_message_bytes: int = _doc(_LIMITS.max_message_bytes, "Largest gRPC message accepted.")
    max_records_per_batch: int = _doc(_LIMITS.max_records_per_batch, "Most records in one batch.")
    max_name_bytes: int = _doc(_LIMITS.max_name_bytes, "Longest metric name, event kind or label key.")
    max_label_value_bytes: int = _doc(_LIMITS.max_label_value_bytes, "Longest label or field value.")
    max_labels: int = _doc(_LIMITS.max_labels, "Most labels per metric / fields per event.")
    max_raw_bytes: int = _doc(_LIMITS.max_raw_bytes, "Longest raw log line of an event.")


@dataclass(frozen=True)
class RetentionSection:
    metrics: str = _doc("14d", "How long metric samples are kept in the embedded store.")
    events: str = _doc("90d", "How long events are kept.")
    interval: str = _doc("10m", "How often old data is deleted.")


@dataclass(frozen=True)
class InfluxSection:
    enabled: bool = _doc(False, "Also write metrics to an InfluxDB v2 compatible write API.")
    url: str = _doc("", "e.g. http://127.0.0.1:8086; or env WARDEN_INFLUX_URL.")
    org: str = _doc("", "Organisation; or env WARDEN_INFLUX_ORG.")
    bucket: str = _doc("", "Bucket; or env WARDEN_INFLUX_BUCKET.")
    token: str = _doc("", "API token; prefer env WARDEN_INFLUX_TOKEN over writing it here.")
    batch_size: int = _doc(5000, "Points per write request.")
    max_buffer_points: int = _doc(1_000_000, "Points kept while the server is down; oldest dropped past it.")


@dataclass(frozen=True)
class RulesSection:
    dir: str = _doc("", "Directory of rule files (*.yml); empty = the default pack shipped with Warden. "
                        "Reloaded on SIGHUP and when a file changes.")
    tick: str = _doc("1s", "How often rules re-evaluate without news (for:, windows, host checks).")
    watch: bool = _doc(True, "Reload when a rule file changes (checked every 2 s); SIGHUP always reloads.")


@dataclass(frozen=True)
class WebSection:
    listen: str = _doc("0.0.0.0:4513", "Dashboard over HTTPS (the collector's server certificate), sign-in "
                                       "required; empty to disable. If the port is taken the collector "
                                       "logs it and runs without the dashboard.")
    session_lifetime: str = _doc("12h", "A sign-in lasts at most this long.")
    session_idle: str = _doc("1h", "A session ends after this long without a request (an open dashboard "
                                   "keeps it alive).")
    login_max_failures: int = _doc(5, "Failed sign-ins per user name and address before a lockout.")
    login_lockout: str = _doc("60s", "How long sign-in is refused after too many failures.")
    refresh: str = _doc("5s", "How often open dashboards receive host tile updates (Server-Sent Events).")


@dataclass(frozen=True)
class CollectorConfig:
    collector: CollectorSection = field(default_factory=CollectorSection)
    tls: TlsSection = field(default_factory=TlsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    influx: InfluxSection = field(default_factory=InfluxSection)
    rules: RulesSection = field(default_factory=RulesSection)
    web: WebSection = field(default_factory=WebSection)
    # [alerts]: grouping, receivers (webhooks, email, files) and inhibition; validated by
    # warden.collector.alerts.config (nested tables do not fit the flat sections above).
    alerts: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.collector.data_dir)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "warden.db"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def rules_dir(self) -> Path:
        if self.rules.dir:
            return Path(self.rules.dir)
        return Path(__file__).resolve().parent.parent / "rules"

    @property
    def alerts_db_path(self) -> Path:
        return self.data_dir / "alerts.db"

    @property
    def web_db_path(self) -> Path:
        """Dashboard users and sessions (kept apart from the data the agents send)."""
        return self.data_dir / "web.db"

    def seconds(self, value: str) -> int:
        return parse_ttl(value)

    def to_limits(self) -> Limits:
        return Limits(**dataclasses.asdict(self.limits))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = known.get(key)
        name = f"{where}.{key}" if where else key
        if f is None:
            raise ConfigError(f"unknown option {name!r} (known: {', '.join(known)})")
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table")
            kwargs[key] = _build(f.default_factory, value, name)  # type: ignore[arg-type]
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default)):
            raise ConfigError(f"{name} must be of type {type(default).__name__}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def load_config(path: Path | None) -> CollectorConfig:
    """Read and validate a config file; None means all defaults. Errors name the option."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    alerts = data.pop("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError("alerts must be a table")
    try:
        from warden.collector.alerts.config import from_mapping

        from_mapping(alerts)
    except ValueError as exc:
        raise ConfigError(f"alerts: {exc}") from exc
    cfg = dataclasses.replace(_build(CollectorConfig, data, ""), alerts=alerts)
    for name in ("heartbeat",):
        _duration(getattr(cfg.collector, name), f"collector.{name}")
    _duration(cfg.tls.client_cert_lifetime, "tls.client_cert_lifetime")
    for name in ("metrics", "events", "interval"):
        _duration(getattr(cfg.retention, name), f"retention.{name}")
    _duration(cfg.rules.tick, "rules.tick")
    if cfg.collector.log_format not in ("text", "json"):
        raise ConfigError(f"collector.log_format must be text or json, not {cfg.collector.log_format!r}")
    if cfg.collector.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"collector.log_level must be debug, info, warning or error, "
                          f"not {cfg.collector.log_level!r}")
    for name in ("session_lifetime", "session_idle", "login_lockout", "refresh"):
        _duration(getattr(cfg.web, name), f"web.{name}")
    if cfg.web.login_max_failures < 1:
        raise ConfigError("web.login_max_failures must be at least 1")
    return cfg


def _duration(value: str, name: str) -> int:
    try:
        return parse_ttl(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def default_config_path() -> Path | None:
    env = os.environ.get("WARDEN_COLLECTOR_CONFIG")
    return Path(env) if env else None


def render_example() -> str:
    """The documented default configuration as TOML."""
    lines = ["# warden-collector configuration: every option with its default.", ""]
    for section in dataclasses.fields(CollectorConfig):
        if section.name == "alerts":
            lines += _ALERTS_EXAMPLE
            continue
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {_toml(default)}")
        lines.append("")
    return "\n".join(lines)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


_ALERTS_EXAMPLE = [
    "# [alerts]: how alerts are grouped and where notifications go (all optional).",
    "# [alerts]",
    '# group_by = ["alertname", "host"]   # one notification per group',
    '# group_wait = "10s"                 # wait this long to batch a new group',
    '# group_interval = "1m"              # then send a group\'s changes at most this often',
    '# repeat_interval = "4h"             # re-send still-firing (unacknowledged) alerts',
    "# [[alerts.webhooks]]                # JSON, HMAC-SHA256 signed (X-Warden-Signature)",
    '# name = "ops"',
    '# url = "https://hooks.example.org/warden"',
    '# secret = "change-me"',
    '# min_severity = "warning"',
    "# [[alerts.email]]",
    '# name = "duty"',
    '# host = "smtp.example.org"',
    "# port = 587",
    '# security = "starttls"               # none | starttls | ssl',
    '# from = "warden@example.org"',
    '# to = ["duty@example.org"]',
    "# [[alerts.files]]",
    '# name = "log"',
    '# path = "/var/log/warden/alerts.jsonl"',
    "# [[alerts.inhibit]]                  # a silent host does not also page for each of its checks",
    '# source = { alertname = "host_silent" }',
    "# target = {}",
    '# equal = ["host"]',
    "",
]
