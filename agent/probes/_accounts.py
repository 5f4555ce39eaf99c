"""Linux backend of the `accounts` inventory: local users and groups, admins, password state,
last logins. Reads files under the host's rootfs only; never runs a tool.

Sources: /etc/passwd, /etc/group, /etc/shadow (often unreadable: then `shadow_readable` is
false and password facts are unknown), /etc/sudoers and its includes, /var/log/lastlog,
/var/log/wtmp and /var/lib/lastlog/lastlog2.db (util-linux's successor of lastlog).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warden.v1 import records_pb2

__all__ = ["AccountsResult", "collect_accounts", "parse_sudoers_grants"]

# Shells that refuse an interactive login (or run one fixed command and exit).
_NO_LOGIN_SHELLS = frozenset({"nologin", "false", "sync", "shutdown", "halt"})

# struct lastlog on Linux x86_64 (glibc keeps a 32-bit time for compatibility): 292 bytes per UID.
_LASTLOG = struct.Struct("<i32s256s")
# struct utmp on Linux x86_64 (384 bytes): type, pid, line, id, user, host, exit, session,
# tv_sec, tv_usec, addr_v6, unused.
_UTMP = struct.Struct("<h2xi32s4s32s256s4xii4x16s20s")
_USER_PROCESS = 7
# wtmp grows until rotated; only its newest part is read (newest logins are at the end).
WTMP_MAX_BYTES = 32 * 1024 * 1024
_MAX_FILE_BYTES = 16 * 1024 * 1024  # passwd/group/shadow/sudoers larger than this are not plausible
_MAX_INCLUDE_DEPTH = 8  # sudo's own limit is 128; a deeper chain here is a loop or an attack
_MAX_INCLUDED_FILES = 256


@dataclass
class AccountsResult:
    section: records_pb2.AccountsSection
    # source -> error text, for sources that exist but could not be read (shadow excluded:
    # it has its own field). Reported once by the probe.
    problems: dict[str, str] = field(default_factory=dict)


@dataclass
class _User:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    shell: str


def collect_accounts(rootfs: Path, admin_groups: Iterable[str], now: float | None = None) -> AccountsResult:
    now = time.time() if now is None else now
    problems: dict[str, str] = {}
    users = list(_parse_passwd(_read_text(rootfs / "etc/passwd", problems, "/etc/passwd")))
    groups = list(_parse_group(_read_text(rootfs / "etc/group", problems, "/etc/group")))
    shadow = _read_shadow(rootfs / "etc/shadow")
    grants = _sudoers(rootfs, problems)
    logins = _last_logins(rootfs, users, problems)

    by_gid = {g.gid: g for g in groups}
    group_members: dict[str, set[str]] = {g.name: set(g.members) for g in groups}
    for u in users:  # a primary group counts as membership (wheel via gid on some systems)
        g = by_gid.get(u.gid)
        if g is not None:
            group_members[g.name].add(u.name)

    admins: set[str] = set()
    for name in admin_groups:
        admins |= group_members.get(name, set())
    everyone = False
    for entry in grants:
        if entry == "ALL":
            everyone = True
        elif entry.startswith("%#"):
            g = by_gid.get(_int(entry[2:], -1))
            if g is not None:
                admins |= group_members[g.name]
        elif entry.startswith("%"):
            admins |= group_members.get(entry[1:], set())
        elif entry.startswith("#"):
            admins |= {u.name for u in users if str(u.uid) == entry[1:]}
        else:
            admins.add(entry)
    uid0 = sorted(u.name for u in users if u.uid == 0)
    admins |= set(uid0)
    if everyone:
        admins |= {u.name for u in users}

    section = records_pb2.AccountsSection(
        uid0_users=uid0,
        admin_users=sorted(admins),
        sudoers_entries=sorted(grants),
        shadow_readable=shadow is not None,
    )
    today = int(now // 86400)
    for u in sorted(users, key=lambda u: (u.uid, u.name)):
        pw: str | None = u.password
        age = -1
        if pw == "x":  # the password lives in shadow
            entry = shadow.get(u.name) if shadow is not None else None
            pw = None if entry is None else entry[0]
            # lastchg 0 means "must change at next login": no meaningful age.
            if entry is not None and entry[1] > 0:
                age = max(0, today - entry[1])
        shell_name = os.path.basename(u.shell) if u.shell else "sh"
        section.users.append(
            records_pb2.Account(
                name=u.name,
                uid=u.uid,
                gid=u.gid,
                home=u.home,
                shell=u.shell,
                login_shell=shell_name not in _NO_LOGIN_SHELLS,
                locked=pw is not None and pw.startswith(("!", "*")),
                empty_password=pw == "",
                password_age_days=age,
                last_login_unix=logins.get(u.name, -1) if logins is not None else -1,
                admin=u.name in admins,
            )
        )
    for g in sorted(groups, key=lambda g: (g.gid, g.name)):
        section.groups.append(records_pb2.Group(name=g.name, gid=g.gid, members=sorted(g.members)))
    return AccountsResult(section, problems)


# --- passwd / group / shadow --------------------------------------------------------------------


@dataclass
class _GroupEntry:
    name: str
    gid: int
    members: list[str]


def _read_text(path: Path, problems: dict[str, str] | None, source: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_FILE_BYTES).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    except OSError as e:
        if problems is not None:
            problems[source] = e.strerror or type(e).__name__
        return ""


def _lines(text: str) -> Iterator[list[str]]:
    for line in text.splitlines():
        if not line or line.startswith(("#", "+", "-")):  # NIS compat entries are not local accounts
            continue
        yield line.split(":")


def _parse_passwd(text: str) -> Iterator[_User]:
    for f in _lines(text):
        if len(f) < 7 or not f[0]:
            continue  # a truncated or garbled line
        uid, gid = _int(f[2], -1), _int(f[3], -1)
        if uid < 0 or gid < 0:
            continue
        yield _User(f[0], f[1], uid, gid, f[5], f[6])


def _parse_group(text: str) -> Iterator[_GroupEntry]:
    for f in _lines(text):
        if len(f) < 4 or not f[0]:
            continue
        gid = _int(f[2], -1)
        if gid < 0:
            continue
        yield _GroupEntry(f[0], gid, [m.strip() for m in f[3].split(",") if m.strip()])


def _read_shadow(path: Path) -> dict[str, tuple[str, int]] | None:
    """name -> (password field, last change in days since the epoch; -1 unknown); None if unreadable."""
    try:
        with open(path, "rb") as f:
            text = f.read(_MAX_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    out = {}
    for f in _lines(text):
        if len(f) < 3 or not f[0]:
            continue
        out[f[0]] = (f[1], _int(f[2], -1))
    return out


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


# --- sudoers ------------------------------------------------------------------------------------

_ALIAS = re.compile(r"^(User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias|Cmd_Alias)\s+(.*)$")
_INCLUDE = re.compile(r"^[#@](include|includedir)\s+(.+)$")


def _sudoers(rootfs: Path, problems: dict[str, str]) -> list[str]:
    """Users and %groups granted ALL commands by /etc/sudoers and what it includes."""
    lines: list[str] = []
    seen: set[str] = set()
    _collect_sudoers(rootfs, "/etc/sudoers", lines, seen, problems, 0)
    return sorted(parse_sudoers_grants(lines))


def _collect_sudoers(
    rootfs: Path, path: str, out: list[str], seen: set[str], problems: dict[str, str], depth: int
) -> None:
    if path in seen or depth > _MAX_INCLUDE_DEPTH or len(seen) >= _MAX_INCLUDED_FILES:
        return
    seen.add(path)
    text = _read_text(rootfs / path.lstrip("/"), problems, path)
    for line in _logical_lines(text):
        m = _INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        target = m.group(2).strip().strip('"')
        if not target.startswith("/"):  # sudo 1.9: relative to the including file's directory
            target = os.path.join(os.path.dirname(path), target)
        if m.group(1) == "include":
            _collect_sudoers(rootfs, target, out, seen, problems, depth + 1)
            continue
        try:
            names = sorted(os.listdir(rootfs / target.lstrip("/")))
        except FileNotFoundError:
            continue
        except OSError as e:
            problems[target] = e.strerror or type(e).__name__
            continue
        for name in names:
            # sudo skips names ending in '~' or containing '.' (editor backups, dpkg leftovers).
            if name.endswith("~") or "." in name:
                continue
            _collect_sudoers(rootfs, f"{target.rstrip('/')}/{name}", out, seen, problems, depth + 1)


def _logical_lines(text: str) -> Iterator[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if not line:
            continue
        if line.startswith("#"):
            # "#include" and "#includedir" are directives; any other '#' line is a comment
            # ("#1000 ALL=..." uid specs are rare enough to read as comments, like most tools do).
            if not _INCLUDE.match(line):
                continue
        else:
            line = _strip_comment(line)
        if line:
            yield line
    if pending.strip():
        yield _strip_comment(pending.strip())


def _strip_comment(line: str) -> str:
    # A '#' starts a comment unless it is part of a token such as %#1000 or #1000.
    out = []
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1].isspace()) and not line[i + 1 : i + 2].isdigit():
            break
        out.append(ch)
    return "".join(out).strip()


def parse_sudoers_grants(lines: Iterable[str]) -> set[str]:
    """From sudoers logical lines (includes already expanded), the user-list entries
    (`alice`, `%sudo`, `%#27`, `ALL`) granted ALL commands on some host. Negated entries and
    entries whose command list is restricted are not grants."""
    user_aliases: dict[str, list[str]] = {}
    cmnd_aliases: dict[str, list[str]] = {}
    specs: list[tuple[list[str], str]] = []
    for line in lines:
        if line.startswith("Defaults"):
            continue
        m = _ALIAS.match(line)
        if m:
            kind, rest = m.groups()
            for part in rest.split(":"):
                name, sep, members = part.partition("=")
                if not sep:
                    continue
                items = _split_list(members)
                if kind == "User_Alias":
                    user_aliases[name.strip()] = items
                elif kind in ("Cmnd_Alias", "Cmd_Alias"):
                    cmnd_aliases[name.strip()] = items
            continue
        head, sep, rest = line.partition("=")
        if not sep:
            continue
        # "alice, %ops  ALL" : users, then the host list as the last word.
        words = re.sub(r"\s*,\s*", ",", head.strip()).split()
        if len(words) < 2:
            continue
        specs.append((_split_list(words[0]), rest))

    grants: set[str] = set()
    for users, rest in specs:
        if not _grants_all(rest, cmnd_aliases):
            continue
        for u in _expand(users, user_aliases, set()):
            grants.add(u)
    return grants


def _split_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _expand(items: list[str], aliases: dict[str, list[str]], seen: set[str]) -> Iterator[str]:
    for item in items:
        if item.startswith("!"):
            continue  # negation: a grant excluding someone grants them nothing
        if item in aliases and item not in seen:
            yield from _expand(aliases[item], aliases, seen | {item})
        elif item.startswith("+") or item.startswith("%:"):
            continue  # netgroups and non-Unix groups: not resolvable from local files
        else:
            yield item


def _grants_all(rest: str, cmnd_aliases: dict[str, list[str]]) -> bool:
    """Whether a spec's right-hand side, e.g. "(ALL:ALL) NOPASSWD: ALL" or
    "(root) /bin/ls : otherhost = ALL", grants every command somewhere."""
    rest = re.sub(r"\([^)]*\)", " ", rest)  # runas lists: (ALL:ALL)
    # Further "Host_List = Cmnd_List" specs follow a ':' whose next '=' comes before any ':'.
    for i, seg in enumerate(re.split(r":(?=[^:=]*=)", rest)):
        if i > 0:
            seg = seg.partition("=")[2]
        for item in _split_list(seg):
            words = item.replace(":", ": ").split()
            # Leading tags (NOPASSWD:) and options (TIMEOUT=30, ROLE=...) are not the command.
            while words and (words[0].endswith(":") or "=" in words[0]):
                words.pop(0)
            cmd = " ".join(words)
            if cmd == "ALL" or "ALL" in cmnd_aliases.get(cmd, []):
                return True
    return False


# --- last logins --------------------------------------------------------------------------------


def _last_logins(rootfs: Path, users: list[_User], problems: dict[str, str]) -> dict[str, int] | None:
    """name -> newest login time (0 = never). None when no login record source is readable."""
    found: dict[str, int] = {}
    readable = False
    lastlog = rootfs / "var/log/lastlog"
    try:
        with open(lastlog, "rb") as f:
            readable = True
            for u in users:
                f.seek(u.uid * _LASTLOG.size)
                rec = f.read(_LASTLOG.size)
                if len(rec) == _LASTLOG.size:  # beyond the end (sparse file): never logged in
                    t = _LASTLOG.unpack(rec)[0]
                    if t > 0:
                        found[u.name] = max(found.get(u.name, 0), t)
    except FileNotFoundError:
        pass
    except OSError as e:
        problems["/var/log/lastlog"] = e.strerror or type(e).__name__

    wtmp = _wtmp_logins(rootfs / "var/log/wtmp", problems)
    if wtmp is not None:
        readable = True
        for name, t in wtmp.items():
            found[name] = max(found.get(name, 0), t)

    ll2 = _lastlog2(rootfs / "var/lib/lastlog/lastlog2.db", problems)
    if ll2 is not None:
        readable = True
        for name, t in ll2.items():
            found[name] = max(found.get(name, 0), t)
    if not readable:
        return None
    return {u.name: found.get(u.name, 0) for u in users}


def _wtmp_logins(path: Path, problems: dict[str, str]) -> dict[str, int] | None:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    except OSError as e:
        problems["/var/log/wtmp"] = e.strerror or type(e).__name__
        return None
    out: dict[str, int] = {}
    with f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - WTMP_MAX_BYTES)
        f.seek(start - start % _UTMP.size)  # stay aligned on records
        while True:
            chunk = f.read(_UTMP.size * 4096)
            usable = len(chunk) - len(chunk) % _UTMP.size  # a truncated last record is dropped
            if usable <= 0:
                break
            for rec in _UTMP.iter_unpack(chunk[:usable]):
                if rec[0] != _USER_PROCESS:
                    continue
                user = rec[4].split(b"\0", 1)[0].decode("utf-8", "replace")
                if user and rec[7] > out.get(user, 0):
                    out[user] = rec[7]
            if len(chunk) < _UTMP.size * 4096:
                break
    return out


def _lastlog2(path: Path, problems: dict[str, str]) -> dict[str, int] | None:
    if not path.exists():
        return None
    try:
        # Read only, through a URI so that no journal or WAL file is ever created on the host.
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as e:
        problems["/var/lib/lastlog/lastlog2.db"] = str(e)
        return None
    try:
        rows = conn.execute("SELECT Name, Time FROM Lastlog2").fetchall()
    except sqlite3.Error as e:
        problems["/var/lib/lastlog/lastlog2.db"] = str(e)
        return None
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    return {str(n): int(t) for n, t in rows if isinstance(t, int) and t > 0}
