"""The `[alerts]` configuration: grouping, receivers, retries and inhibition.

    group_by = ["alertname", "host"]
    group_wait = "10s"
    group_interval = "1m"
    repeat_interval = "4h"
    retry = { attempts = 5, base = "1s", cap = "60s" }
    [[alerts.webhooks]]   name, url, secret, min_severity, match = {label = value}, timeout
    [[alerts.email]]      name, host, port, security = "none|starttls|ssl", username, password,
                          from, to = [...], min_severity, match, timeout, ca_file
    [[alerts.files]]      name, path, min_severity, match
    [[alerts.inhibit]]    source = {...}, target = {...}, equal = [...]

Without an `inhibit` key, a firing `host_silent` inhibits the other alerts of its host
(`inhibit = []` turns that off). Unknown keys are refused by name: a typo must not
silently turn a receiver's filter off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warden.collector.alerts.email import DEFAULT_PORTS, SECURITY, EmailNotifier
from warden.collector.alerts.jsonfile import JsonFileNotifier
from warden.collector.alerts.manager import DEFAULT_INHIBIT, InhibitRule
from warden.collector.alerts.notify import Dispatcher, Matchers, Receiver, RetryPolicy
from warden.collector.alerts.webhook import WebhookNotifier, redact
from warden.collector.rules.model import SEVERITIES
from warden.collector.rules.spec import parse_duration


@dataclass(frozen=True)
class Route:
    min_severity: str = "info"
    match: Matchers = field(default_factory=lambda: Matchers.parse({}))


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: str
    secret: str = ""
    timeout: float = 10.0
    route: Route = field(default_factory=Route)


@dataclass(frozen=True)
class EmailConfig:
    name: str
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    security: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    route: Route = field(default_factory=Route)


@dataclass(frozen=True)
class FileConfig:
    name: str
    path: str
    route: Route = field(default_factory=Route)


@dataclass(frozen=True)
class NotifyConfig:
    group_by: tuple[str, ...] = ("alertname", "host")
    group_wait: float = 10.0
    group_interval: float = 60.0
    repeat_interval: float = 4 * 3600.0
    webhooks: tuple[WebhookConfig, ...] = ()
    email: tuple[EmailConfig, ...] = ()
    files: tuple[FileConfig, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT


_TOP = ("group_by", "group_wait", "group_interval", "repeat_interval", "webhooks", "email", "files",
        "retry", "inhibit")
_ROUTE = ("min_severity", "match")
_WEBHOOK = ("name", "url", "secret", "timeout", *_ROUTE)
_EMAIL = ("name", "host", "port", "security", "username", "password", "from", "to", "timeout", "ca_file",
          *_ROUTE)
_FILE = ("name", "path", *_ROUTE)
_RETRY = ("attempts", "base", "cap")
_INHIBIT = ("source", "target", "equal")


def _keys(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a table/mapping, not {type(d).__name__}")
    for k in d:
        if k not in allowed:
            raise ValueError(f"{where}: unknown key {k!r} (allowed: {', '.join(allowed)})")
    return d


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if v is None:
        raise ValueError(f"{where}: {key!r} is required")
    if not isinstance(v, str):
        raise ValueError(f"{where}: {key!r} must be a string")
    return v


def _duration(d: Mapping[str, Any], key: str, where: str, default: float) -> float:
    if key not in d:
        return default
    try:
        return parse_duration(d[key])
    except ValueError as exc:
        raise ValueError(f"{where}: {key}: {exc}") from None


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    v = d.get(key, [])
    if not isinstance(v, list | tuple):
        raise ValueError(f"{where}: {key!r} must be a list")
    return list(v)


def _str_list(d: Mapping[str, Any], key: str, where: str, default: list[str]) -> tuple[str, ...]:
    v = d.get(key, default)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"{where}: {key!r} must be a list of non-empty strings")
    return tuple(v)


def _route(d: Mapping[str, Any], where: str) -> Route:
    sev = _str(d, "min_severity", where, "info")
    if sev not in SEVERITIES:
        raise ValueError(f"{where}: min_severity must be one of {', '.join(SEVERITIES)}, not {sev!r}")
    return Route(sev, Matchers.parse(d.get("match", {}), f"{where}: match"))


def from_mapping(d: Mapping[str, Any] | None) -> NotifyConfig:
    """Validate the `[alerts]` table; raises ValueError naming the offending key."""
    d = _keys(d or {}, _TOP, "alerts")
    group_by = _str_list(d, "group_by", "alerts", ["alertname", "host"])
    group_wait = _duration(d, "group_wait", "alerts", 10.0)
    group_interval = _duration(d, "group_interval", "alerts", 60.0)
    repeat_interval = _duration(d, "repeat_interval", "alerts", 4 * 3600.0)
    if group_interval <= 0 or repeat_interval <= 0:
        raise ValueError("alerts: group_interval and repeat_interval must be more than 0")

    names: set[str] = set()

    def name(item: Mapping[str, Any], kind: str, i: int) -> str:
        n = _str(item, "name", f"alerts.{kind}[{i}]", f"{kind.rstrip('s')}{i + 1}")
        if not n.strip() or n in names:
            raise ValueError(f"alerts.{kind}[{i}]: name {n!r} is empty or used twice")
        names.add(n)
        return n

    webhooks = []
    for i, w in enumerate(_list(d, "webhooks", "alerts")):
        where = f"alerts.webhooks[{i}]"
        w = _keys(w, _WEBHOOK, where)
        url = _str(w, "url", where)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: url must start with http:// or https://, not {redact(url)!r}")
        webhooks.append(WebhookConfig(name(w, "webhooks", i), url, _str(w, "secret", where, ""),
                                      _duration(w, "timeout", where, 10.0), _route(w, where)))

    emails = []
    for i, e in enumerate(_list(d, "email", "alerts")):
        where = f"alerts.email[{i}]"
        e = _keys(e, _EMAIL, where)
        security = _str(e, "security", where, "none")
        if security not in SECURITY:
            raise ValueError(f"{where}: security must be one of {', '.join(SECURITY)}, not {security!r}")
        port = e.get("port", DEFAULT_PORTS[security])
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{where}: port must be a number from 1 to 65535")
        sender = _str(e, "from", where)
        to = _str_list(e, "to", where, [])
        if "@" not in sender or not to or not all("@" in t for t in to):
            raise ValueError(f"{where}: 'from' and every 'to' must be email addresses, and 'to' not empty")
        username, password = _str(e, "username", where, ""), _str(e, "password", where, "")
        if password and not username:
            raise ValueError(f"{where}: a password needs a username")
        ca_file = _str(e, "ca_file", where, "") or None
        emails.append(EmailConfig(name(e, "email", i), _str(e, "host", where), sender, to, port, security,
                                  username, password, _duration(e, "timeout", where, 30.0), ca_file,
                                  _route(e, where)))

    files = []
    for i, f in enumerate(_list(d, "files", "alerts")):
        where = f"alerts.files[{i}]"
        f = _keys(f, _FILE, where)
        files.append(FileConfig(name(f, "files", i), _str(f, "path", where), _route(f, where)))

    r = _keys(d.get("retry", {}), _RETRY, "alerts.retry")
    attempts = r.get("attempts", 5)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
        raise ValueError("alerts.retry: attempts must be a whole number from 1 to 100")
    retry = RetryPolicy(attempts, _duration(r, "base", "alerts.retry", 1.0),
                        _duration(r, "cap", "alerts.retry", 60.0))

    if "inhibit" in d:
        inhibit = []
        for i, rule in enumerate(_list(d, "inhibit", "alerts")):
            where = f"alerts.inhibit[{i}]"
            rule = _keys(rule, _INHIBIT, where)
            if "source" not in rule:
                raise ValueError(f"{where}: 'source' is required")
            inhibit.append(InhibitRule.parse(rule["source"], rule.get("target", {}),
                                             _str_list(rule, "equal", where, []), where))
        inhibit_rules = tuple(inhibit)
    else:
        inhibit_rules = DEFAULT_INHIBIT

    return NotifyConfig(group_by, group_wait, group_interval, repeat_interval, tuple(webhooks),
                        tuple(emails), tuple(files), retry, inhibit_rules)


def build_dispatcher(cfg: NotifyConfig, queue_size: int = 1000) -> Dispatcher:
    """The dispatcher with every configured receiver (threads start on first use)."""
    receivers: list[Receiver] = []
    for w in cfg.webhooks:
        receivers.append(Receiver(WebhookNotifier(w.name, w.url, w.secret, w.timeout),
                                  w.route.min_severity, w.route.match))
    for e in cfg.email:
        receivers.append(Receiver(EmailNotifier(e.name, e.host, e.sender, list(e.to), e.port, e.security,
                                                e.username, e.password, e.timeout, e.ca_file),
                                  e.route.min_severity, e.route.match))
    for f in cfg.files:
        receivers.append(Receiver(JsonFileNotifier(f.name, f.path), f.route.min_severity, f.route.match))
    return Dispatcher(receivers, group_by=cfg.group_by, group_wait=cfg.group_wait,
                      group_interval=cfg.group_interval, repeat_interval=cfg.repeat_interval,
                      retry=cfg.retry, queue_size=queue_size)
