"""The documented views of `warden-collector query sql` (and GET/POST /api/v1/query/sql).

Each view is created as a TEMP view on the query connection only (the store's file is never
changed), named like its subject; TEMP objects shadow the store's own tables of the same name
(`hosts`), so the view bodies name their base tables with a schema (`main.`, `alertdb.`).
The sandbox (sql.py) lets a query read a base table only through one of these views.

`VIEWS` is the single source for the view SQL and for `query views` / docs/queries.md; a test
checks that every view has exactly its documented columns.
"""

from __future__ import annotations

from dataclasses import dataclass

ALERT_SCHEMA = "alertdb"  # the alert store, attached read-only when the query connection opens


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    doc: str


@dataclass(frozen=True, slots=True)
class View:
    name: str
    doc: str
    columns: tuple[Column, ...]
    select: str  # the view body: SELECT ... AS <each column, in order>


def _cols(*spec: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*c) for c in spec)


HOSTS = View(
    "hosts",
    "Enrolled hosts with their OS facts and update status (one row per host).",
    _cols(
        ("host_id", "TEXT", "host identity (certificate common name)"),
        ("hostname", "TEXT", "host name at enrollment / last report"),
        ("labels", "TEXT", "labels as a JSON object: json_extract(labels, '$.room')"),
        ("os", "TEXT", "OS name as reported (os section)"),
        ("agent_version", "TEXT", "agent version"),
        ("first_seen_ns", "INTEGER", "enrollment time, ns since the epoch"),
        ("last_seen_ns", "INTEGER", "last report, ns since the epoch"),
        ("revoked", "INTEGER", "1 if the host's certificates are revoked"),
        ("os_id", "TEXT", "e.g. debian, rhel, alpine (os section)"),
        ("os_version", "TEXT", "e.g. 12 (os section)"),
        ("kernel", "TEXT", "running kernel (os section)"),
        ("arch", "TEXT", "machine architecture (os section)"),
        ("boot_time_unix", "INTEGER", "boot time, s since the epoch (os section)"),
        ("timezone", "TEXT", "e.g. Europe/Paris (os section)"),
        ("package_manager", "TEXT", "dpkg, rpm, apk, pacman, windows, macos (updates section)"),
        ("pending_count", "INTEGER", "updates pending"),
        ("security_count", "INTEGER", "security updates pending"),
        ("last_update_unix", "INTEGER", "last successful package transaction, s since the epoch, 0 unknown"),
        ("reboot_required", "INTEGER", "1 if the host needs a reboot"),
        ("reboot_since_ns", "INTEGER", "first snapshot that reported the reboot need (NULL: none)"),
        ("running_kernel", "TEXT", "running kernel (updates section)"),
        ("newest_kernel", "TEXT", "newest installed kernel"),
        ("updates_error", "TEXT", "why the agent could not compute pending updates ('' if it could)"),
        ("updates_time_ns", "INTEGER", "time of the latest updates snapshot (NULL: never sent)"),
    ),
    """SELECT h.host_id AS host_id, h.hostname AS hostname, h.labels AS labels, h.os AS os,
       h.agent_version AS agent_version, h.first_seen_ns AS first_seen_ns, h.last_seen_ns AS last_seen_ns,
       h.revoked_ns IS NOT NULL AS revoked,
       o.os_id AS os_id, o.os_version AS os_version, o.kernel AS kernel, o.arch AS arch,
       o.boot_time_unix AS boot_time_unix, o.timezone AS timezone,
       u.manager AS package_manager, u.pending_count AS pending_count, u.security_count AS security_count,
       u.last_update_unix AS last_update_unix, u.reboot_required AS reboot_required,
       u.reboot_since_ns AS reboot_since_ns, u.running_kernel AS running_kernel,
       u.newest_kernel AS newest_kernel, u.error AS updates_error, u.time_ns AS updates_time_ns
FROM main.hosts h
LEFT JOIN main.inv_os o ON o.host_id = h.host_id
LEFT JOIN main.inv_updates u ON u.host_id = h.host_id""",
)

PACKAGES = View(
    "packages",
    "Installed packages from each host's latest full package list (one row per package instance; "
    "indexed by name and by host).",
    _cols(
        ("host_id", "TEXT", "host identity"),
        ("name", "TEXT", "package name"),
        ("version", "TEXT", "installed version, in the manager's own syntax (compare with version_cmp)"),
        ("arch", "TEXT", "architecture ('' if the manager has none)"),
        ("manager", "TEXT", "dpkg, rpm, apk, pacman, windows, macos: the version_cmp scheme"),
    ),
    """SELECT k.host_id AS host_id, v.name AS name, v.version AS version, v.arch AS arch,
       v.manager AS manager
FROM main.inv_packages p
JOIN main.inv_pkg_versions v ON v.id = p.pv
JOIN main.inv_hosts k ON k.hk = p.hk""",
)

PENDING_UPDATES = View(
    "pending_updates",
    "Updates pending on each host, with the time they were first seen pending.",
    _cols(
        ("host_id", "TEXT", "host identity"),
        ("name", "TEXT", "package name"),
        ("arch", "TEXT", "architecture"),
        ("current_version", "TEXT", "installed version"),
        ("new_version", "TEXT", "version the update installs"),
        ("security", "INTEGER", "1 for a security update"),
        ("origin", "TEXT", "repository or advisory"),
        ("first_seen_ns", "INTEGER", "first snapshot that listed this (package, new_version) as pending"),
    ),
    """SELECT host_id AS host_id, name AS name, arch AS arch, current_version AS current_version,
       new_version AS new_version, security AS security, origin AS origin, first_seen_ns AS first_seen_ns
FROM main.inv_pending""",
)

ALERTS = View(
    "alerts",
    "Alert occurrences from the alert store (an alert that fires again is a new row). "
    "Empty when the collector has no alert store.",
    _cols(
        ("id", "INTEGER", "alert id (as in `warden-collector alerts`)"),
        ("host_id", "TEXT", "the alert's host label ('' for fleet-wide alerts)"),
        ("rule_id", "TEXT", "rule that raised it"),
        ("severity", "TEXT", "info, warning, critical, ..."),
        ("state", "TEXT", "pending, firing or resolved"),
        ("fingerprint", "TEXT", "identity of the alert's label set"),
        ("labels", "TEXT", "labels as a JSON object"),
        ("annotations", "TEXT", "summary, description, ... as a JSON object"),
        ("starts_ns", "INTEGER", "condition first held"),
        ("fired_ns", "INTEGER", "became firing (NULL: never)"),
        ("ends_ns", "INTEGER", "resolved (NULL: open)"),
        ("updated_ns", "INTEGER", "last change"),
        ("value", "REAL", "the rule's value when last evaluated"),
        ("ack_by", "TEXT", "operator who acknowledged it (NULL: nobody)"),
        ("ack_ns", "INTEGER", "acknowledgement time"),
        ("silenced", "INTEGER", "1 if a silence matches it"),
        ("inhibited", "INTEGER", "1 if inhibited by another alert"),
    ),
    f"""SELECT id AS id, host AS host_id, rule_id AS rule_id, severity AS severity, state AS state,
       fingerprint AS fingerprint, labels AS labels, annotations AS annotations, starts_ns AS starts_ns,
       fired_ns AS fired_ns, ends_ns AS ends_ns, updated_ns AS updated_ns, value AS value,
       ack_by AS ack_by, ack_ns AS ack_ns, silenced_by != '[]' AS silenced, inhibited AS inhibited
FROM {ALERT_SCHEMA}.alerts""",
)

LOGINS = View(
    "logins",
    "Login attempts parsed from the hosts' auth logs (events of kind auth.login). The events table "
    "is large: filter on time_ns (indexed) or host_id and time_ns.",
    _cols(
        ("id", "INTEGER", "event id"),
        ("host_id", "TEXT", "host identity"),
        ("time_ns", "INTEGER", "time of the log line, ns since the epoch"),
        ("result", "TEXT", "success or failure"),
        ("user", "TEXT", "account name"),
        ("service", "TEXT", "sshd, login, gdm, ..."),
        ("method", "TEXT", "password, publickey, ..."),
        ("src_ip", "TEXT", "remote address (NULL: local or by name)"),
        ("src_host", "TEXT", "remote host name when the log had no address"),
        ("severity", "TEXT", "notice (success) or warning (failure)"),
        ("fields", "TEXT", "every parsed field as a JSON object"),
        ("raw", "TEXT", "the log line"),
    ),
    """SELECT id AS id, host_id AS host_id, time_ns AS time_ns,
       json_extract(fields, '$.result') AS result, json_extract(fields, '$.user') AS user,
       json_extract(fields, '$.service') AS service, json_extract(fields, '$.method') AS method,
       json_extract(fields, '$.src_ip') AS src_ip, json_extract(fields, '$.src_host') AS src_host,
       severity AS severity, fields AS fields, raw AS raw
FROM main.events WHERE kind = 'auth.login'""",
)

VIEWS: tuple[View, ...] = (HOSTS, PACKAGES, PENDING_UPDATES, ALERTS, LOGINS)
VIEW_NAMES = frozenset(v.name for v in VIEWS)

FUNCTIONS_DOC = (
    ("version_cmp(a, b, scheme)", "-1, 0 or 1 as version a sorts before, equal to or after b by the "
     "package manager's rules (scheme: dpkg, rpm, apk, pacman, e.g. packages.manager); NULL when "
     "they cannot be compared (other scheme, a version dpkg rejects, a NULL argument)."),
)


def empty_select(view: View) -> str:
    """The view's columns and no rows: the `alerts` view when there is no alert store."""
    return "SELECT " + ", ".join(f"NULL AS {c.name}" for c in view.columns) + " WHERE 0"
