"""Email notifier: one plain-text message per notification, over SMTP.

Subject: `[FIRING:2] disk_space_warning host=web1` (the group's labels; `[RESOLVED]` when
nothing fires any more). The body lists firing, then resolved alerts: summary, since when,
labels, description. security: "none" (plain SMTP, e.g. a local relay), "starttls"
(upgrade, refused if the server does not offer it) or "ssl" (TLS from the first byte);
certificates are verified against the system's CAs, or `ca_file`.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from warden.collector.alerts.notify import Notification

log = logging.getLogger(__name__)

SECURITY = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


def _oneline(text: str) -> str:
    return " ".join(str(text).split())


def subject(n: Notification) -> str:
    labels = dict(n.group_labels)
    head = labels.pop("alertname", "")
    parts = [head] if head else []
    parts += [f"{k}={v}" for k, v in sorted(labels.items())]
    tag = f"[FIRING:{len(n.firing())}]" if n.status == "firing" else "[RESOLVED]"
    return _oneline(" ".join([tag, *parts]))[:250]


def _alert_block(a: dict[str, Any]) -> list[str]:
    ann = a.get("annotations", {})
    title = _oneline(ann.get("summary", "")) or a["labels"].get("alertname", "")
    lines = [f"- [{a.get('severity', '')}] {title}"]
    since = a.get("fired_at") or a.get("starts_at")
    if a["status"] == "resolved":
        lines.append(f"  resolved {a.get('ends_at') or '?'} (firing since {since})")
    else:
        lines.append(f"  since {since}")
    if a.get("acknowledged"):
        ack = a["acknowledged"]
        note = f": {_oneline(ack['comment'])}" if ack.get("comment") else ""
        lines.append(f"  acknowledged by {ack['by']}{note}")
    lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())))
    if ann.get("description"):
        lines += ["  " + line for line in str(ann["description"]).splitlines()]
    lines.append(f"  alert #{a['id']} fingerprint {a['fingerprint']}")
    return lines


def body(n: Notification) -> str:
    firing, resolved = n.firing(), n.resolved()
    out = [f"{len(firing)} firing, {len(resolved)} resolved: group {n.group_key}"
           + (" (reminder)" if n.repeat else ""), ""]
    for title, items in (("FIRING", firing), ("RESOLVED", resolved)):
        if items:
            out.append(title)
            for a in items:
                out += _alert_block(a)
                out.append("")
    return "\n".join(out).rstrip() + "\n"


class EmailNotifier:
    """Send each notification as one email to `to`; see the module docstring."""

    def __init__(self, name: str, host: str, sender: str, to: list[str], port: int | None = None,
                 security: str = "none", username: str = "", password: str = "", timeout: float = 30.0,
                 ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        if security not in SECURITY:
            raise ValueError(f"email {name}: security must be one of {', '.join(SECURITY)}, not {security!r}")
        if not to:
            raise ValueError(f"email {name}: no recipients")
        self.name = name
        self.host = host
        self.port = port or DEFAULT_PORTS[security]
        self.security = security
        self.sender = sender
        self.to = list(to)
        self.username = username
        self.password = password
        self.timeout = timeout
        self._ctx = ssl_context
        self._ca_file = ca_file

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject(n)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(usegmt=True)
        # Passing the domain avoids make_msgid's DNS lookup of our own name.
        domain = self.sender.rsplit("@", 1)[-1].strip(" >") or "warden.invalid"
        msg["Message-ID"] = make_msgid("warden", domain=domain)
        msg["X-Warden-Group"] = _oneline(n.group_key)[:200]
        msg.set_content(body(n))
        return msg

    def _context(self) -> ssl.SSLContext:
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=self._ca_file)
        return self._ctx

    def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self._context())  # raises if the server does not offer it
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
            # All refused raises; some refused is logged, not retried (that would resend to the rest).
            refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.to)
        if refused:
            log.warning("email %s: recipients refused: %s", self.name, ", ".join(sorted(refused)))
