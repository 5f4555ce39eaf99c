"""JSON-lines notifier: appends one line per *notification* (not per alert change) to a file.

Each line is the webhook body (Alertmanager's version 4 shape) plus `"time"` (RFC 3339,
when it was written). The file is created 0600 (alerts name hosts and users), opened for
each line (so logrotate's move-and-recreate just works), and fsynced before `send`
returns. Any failure to write is a send failure, retried by the dispatcher.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from warden.collector.alerts.notify import Notification
from warden.collector.alerts.store import rfc3339


class JsonFileNotifier:
    def __init__(self, name: str, path: Path | str) -> None:
        self.name = name
        self.path = Path(path)

    def line(self, notification: Notification) -> bytes:
        doc = {"time": rfc3339(time.time_ns()), **notification.webhook_payload()}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def send(self, notification: Notification) -> None:
        data = self.line(notification)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
