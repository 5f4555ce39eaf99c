"""Account changes logged by shadow-utils (useradd, userdel, usermod, groupadd, groupdel, groupmod,
passwd, chage, gpasswd, chsh, chfn), PAM password changes, and sudoers edits made through sudo.

Kinds (severity notice; warning when an admin group gains a member or sudoers is edited):
  account.user_added            user, uid, gid, home, shell, tty
  account.user_deleted          user
  account.user_changed          user, attribute, old, new      (usermod, chsh, chfn, lock/unlock)
  account.password_changed      user, by, service
  account.password_expiry_changed  user
  account.group_added           group, gid, file
  account.group_deleted         group, owner, file
  account.group_changed         group, detail | members, by, file
  account.group_member_added    user, group, by, shadow, admin_group
  account.group_member_removed  user, group, by, shadow, admin_group
  account.sudoers_edited        user, run_as, command, path, tty, pwd (from sudo's command log)
All carry `tool`, the program that logged them.
"""

from __future__ import annotations

import re

from warden.agent.logparse.syslog import Fields, Handler, Parsed, num

__all__ = ["ADMIN_GROUPS", "HANDLERS", "password_changed", "sudoers_path"]

_F = re.ASCII | re.DOTALL

# Membership here grants root (sudo, wheel) or is root's own group.
ADMIN_GROUPS = frozenset(("sudo", "wheel", "admin", "root"))

_KV_NAMES = {"name": "", "UID": "uid", "GID": "gid", "home": "home", "shell": "shell", "from": "tty"}
_MEMBER = re.compile(r"(add|delete) '([^']*)' (?:to|from) (shadow )?group '([^']*)'\Z", _F)
_DELETE_USER = re.compile(r"delete user '([^']*)'\Z", _F)
_REMOVED_GROUP = re.compile(r"removed (shadow )?group '([^']*)' owned by '([^']*)'\Z", _F)
_GROUP_ADDED = re.compile(r"group added to (\S+): (.*)\Z", _F)
_GROUP_REMOVED = re.compile(r"group '([^']*)' removed(?: from (\S+))?\Z", _F)
_GROUP_CHANGED = re.compile(r"group changed in (\S+) \((?:group )?([^/\s)]*)(.*)\)\Z", _F)
_CHANGE_ATTR = re.compile(r"change user '([^']*)' (\S+) from '([^']*)' to '([^']*)'\Z", _F)
_CHANGE_NAME = re.compile(r"change user name '([^']*)' to '([^']*)'\Z", _F)
_CHANGE_PASSWORD = re.compile(r"change user '([^']*)' password\Z", _F)
_LOCK = re.compile(r"(lock|unlock) user '([^']*)' password\Z", _F)
_GPASSWD_MEMBER = re.compile(r"user (\S+) (added|removed) by (\S+) (?:to|from) group (\S+)\Z", _F)
_GPASSWD_SET = re.compile(r"members of group (\S+) set by (\S+) to (.*)\Z", _F)
_PASSWD_BY = re.compile(r"password for '([^']*)' changed by '([^']*)'\Z", _F)
_CHAGE = re.compile(r"changed password expiry for (\S+)\Z", _F)
_CHSH = re.compile(r"changed user '([^']*)' shell to '([^']*)'\Z", _F)
_CHFN = re.compile(r"changed user '([^']*)' information\Z", _F)

# Commands that only read sudoers; anything else run on it through sudo counts as an edit.
_READERS = frozenset(("cat", "less", "more", "head", "tail", "grep", "egrep", "fgrep", "zgrep", "ls",
                      "stat", "file", "diff", "md5sum", "sha1sum", "sha256sum", "view", "wc", "lsattr"))


def _kv(text: str) -> dict[str, str]:
    """`name=bob, UID=1001, GID=1001, home=/home/bob` -> {"name": "bob", ...}."""
    out: dict[str, str] = {}
    for part in text.split(", "):
        key, eq, value = part.partition("=")
        if eq:
            out[key.strip()] = value
    return out


def _member(f: Fields, user: str, group: str, added: bool) -> Parsed:
    admin = group in ADMIN_GROUPS
    f.update(user=user, group=group, admin_group=admin)
    kind = "account.group_member_added" if added else "account.group_member_removed"
    return (kind, "warning" if admin and added else "notice", f)


def _new(msg: str, f: Fields) -> Parsed:
    if msg.startswith("new user: "):
        kv = _kv(msg[10:])
        if "name" not in kv:
            return None
        f["user"] = kv.pop("name")
        for key, value in kv.items():
            name = _KV_NAMES.get(key)
            if name:
                f[name] = num(value) if name in ("uid", "gid") and value.isdigit() else value
        return ("account.user_added", "notice", f)
    if msg.startswith("new group: "):
        kv = _kv(msg[11:])
        if "name" not in kv:
            return None
        f["group"] = kv["name"]
        if kv.get("GID", "").isdigit():
            f["gid"] = num(kv["GID"])
        return ("account.group_added", "notice", f)
    return None


def _add_delete(msg: str, f: Fields) -> Parsed:
    if (m := _MEMBER.match(msg)) is not None:
        if m[3]:
            f["shadow"] = True
        return _member(f, m[2], m[4], m[1] == "add")
    if (m := _DELETE_USER.match(msg)) is not None:
        f["user"] = m[1]
        return ("account.user_deleted", "notice", f)
    return None


def _removed(msg: str, f: Fields) -> Parsed:
    m = _REMOVED_GROUP.match(msg)
    if m is None:
        return None
    f.update(group=m[2], owner=m[3])
    if m[1]:
        f["shadow"] = True
    return ("account.group_deleted", "notice", f)


def _group(msg: str, f: Fields) -> Parsed:
    if (m := _GROUP_ADDED.match(msg)) is not None:
        kv = _kv(m[2])
        if "name" not in kv:
            return None
        f.update(group=kv["name"], file=m[1])
        if kv.get("GID", "").isdigit():
            f["gid"] = num(kv["GID"])
        return ("account.group_added", "notice", f)
    if (m := _GROUP_REMOVED.match(msg)) is not None:
        f["group"] = m[1]
        if m[2]:
            f["file"] = m[2]
        return ("account.group_deleted", "notice", f)
    if (m := _GROUP_CHANGED.match(msg)) is not None:
        f.update(group=m[2], file=m[1], detail=(m[2] + m[3]).strip())
        return ("account.group_changed", "notice", f)
    return None


def _change(msg: str, f: Fields) -> Parsed:
    if (m := _CHANGE_ATTR.match(msg)) is not None:
        f.update(user=m[1], attribute=m[2].lower(), old=m[3], new=m[4])
        return ("account.user_changed", "notice", f)
    if (m := _CHANGE_NAME.match(msg)) is not None:
        f.update(user=m[1], attribute="name", old=m[1], new=m[2])
        return ("account.user_changed", "notice", f)
    if (m := _CHANGE_PASSWORD.match(msg)) is not None:
        f["user"] = m[1]
        return ("account.password_changed", "notice", f)
    return None


def _lock(msg: str, f: Fields) -> Parsed:
    m = _LOCK.match(msg)
    if m is None:
        return None
    f.update(user=m[2], attribute="password_lock", new="locked" if m[1] == "lock" else "unlocked")
    return ("account.user_changed", "notice", f)


def _user(msg: str, f: Fields) -> Parsed:
    m = _GPASSWD_MEMBER.match(msg)
    if m is None:
        return None
    f["by"] = m[3]
    return _member(f, m[1], m[4], m[2] == "added")


def _members(msg: str, f: Fields) -> Parsed:
    m = _GPASSWD_SET.match(msg)
    if m is None:
        return None
    f.update(group=m[1], by=m[2], members=m[3], admin_group=m[1] in ADMIN_GROUPS)
    return ("account.group_changed", "warning" if m[1] in ADMIN_GROUPS else "notice", f)


def _password(msg: str, f: Fields) -> Parsed:
    m = _PASSWD_BY.match(msg)
    if m is None:
        return None
    f.update(user=m[1], by=m[2])
    return ("account.password_changed", "notice", f)


def _changed(msg: str, f: Fields) -> Parsed:
    if (m := _CHAGE.match(msg)) is not None:
        f["user"] = m[1]
        return ("account.password_expiry_changed", "notice", f)
    if (m := _CHSH.match(msg)) is not None:
        f.update(user=m[1], attribute="shell", new=m[2])
        return ("account.user_changed", "notice", f)
    if (m := _CHFN.match(msg)) is not None:
        f.update(user=m[1], attribute="information")
        return ("account.user_changed", "notice", f)
    return None


_FIRST_WORD = {
    "new": _new, "add": _add_delete, "delete": _add_delete, "removed": _removed, "group": _group,
    "change": _change, "lock": _lock, "unlock": _lock, "user": _user, "members": _members,
    "password": _password, "changed": _changed,
}


def shadow_utils(msg: str, program: str) -> Parsed:
    sp = msg.find(" ", 0, 16)
    parser = _FIRST_WORD.get(msg[:sp] if sp >= 0 else msg)
    if parser is None:
        return None
    return parser(msg, {"tool": program})


def password_changed(rest: str, service: str, module: str) -> Parsed:
    """PAM `password changed for U` (passwd, chpasswd, any chauthtok)."""
    user = rest.strip()
    if not user or " " in user:
        return None
    return ("account.password_changed", "notice",
            {"user": user, "tool": service, "service": service, "pam_module": module})


def sudoers_path(command: str) -> str | None:
    """The sudoers file a sudo COMMAND= changes (visudo, sudoedit, an editor, tee, cp, ...),
    None when it does not touch sudoers or only reads it (`cat /etc/sudoers`, `visudo -c`)."""
    if "sudoers" not in command and "visudo" not in command:
        return None
    words = command.split()
    exe = words[0].rsplit("/", 1)[-1] if words else ""
    if exe in _READERS:
        return None
    path = next((w for w in words[1:] if w.startswith("/etc/sudoers")), None)
    if exe == "visudo":
        if "-c" in words or "--check" in words:
            return None
        return path or "/etc/sudoers"
    return path


HANDLERS: dict[str, Handler] = {name: shadow_utils for name in (
    "useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "passwd", "chage", "gpasswd",
    "chsh", "chfn", "newusers", "chpasswd")}
