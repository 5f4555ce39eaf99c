"""Authentication messages: sshd, PAM (any module, any service), sudo, su, login, gdm, and the two
legacy daemons of the loghub Linux sample (klogind, ftpd).

Kinds (severity):
  auth.login            (success: notice, failure: warning)  result, user, service, method,
                        src_ip | src_host, src_port, reason, invalid_user, pam_module, tty, ...
  auth.invalid_user     (warning)  user, src_ip | src_host, src_port, service
  auth.disconnect       (info)     src_ip | src_host, src_port, preauth, reason, user, code, detail
  auth.too_many_failures(warning)  user, src_ip | src_host, src_port, count, service
  auth.break_in_attempt (warning)  src_ip, hostname, check (reverse_mapping | address_mismatch)
  auth.session_opened / auth.session_closed (info)  user, uid, by_user, by_uid, service
  auth.sudo             (success: notice, failure: warning)  user, run_as, command, tty, pwd, result
  auth.su               (success: notice, failure: warning)  user, run_as, tty, result

sshd and PAM both report one failed password (`Failed password ...` and
`pam_unix(sshd:auth): authentication failure ...`); both become events, the PAM one carries
`pam_module` so a rule counting attempts can keep one layer.

Every pattern is anchored (`match`, `\\Z`) and has at most one unbounded `.*`, with the fields a
client controls (user names) matched greedily up to the daemon's fixed suffix, so a user name
like `x from 6.6.6.6 port 1` cannot move the address, and matching stays linear.
"""

from __future__ import annotations

import re

from warden.agent.logparse import accounts
from warden.agent.logparse.syslog import Fields, Handler, Parsed, num

__all__ = ["HANDLERS", "pam", "pam_legacy", "service_name"]

_F = re.ASCII | re.DOTALL

_SERVICES = {
    "sshd-session": "sshd", "sshd-auth": "sshd", "sudo-i": "sudo", "su-l": "su", "--": "login",
    "gdm-binary": "gdm", "gdm-password": "gdm", "gdm-autologin": "gdm", "gdm-fingerprint": "gdm",
    "gdm-smartcard": "gdm", "gdm-launch-environment": "gdm", "gdm-session-worker": "gdm",
}
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?\Z", re.ASCII)


def service_name(name: str) -> str:
    """PAM service or program -> the `service` field: sshd, sudo, su, login, gdm, or as given."""
    return _SERVICES.get(name, name)


def _src(fields: Fields, addr: str | None, port: str | None = None) -> None:
    # sshd logs a host name instead of the address under UseDNS, PAM's rhost often is one.
    if addr:
        # Digits and dots (IPv4), or hex and colons (IPv6); string tests first, they are cheaper.
        ip = (addr.replace(".", "").isdigit() and addr.isascii()) or (":" in addr and _IPV6.match(addr))
        fields["src_ip" if ip else "src_host"] = addr
    if port:
        fields["src_port"] = num(port)


# ---------------------------------------------------------------- sshd

_SSH_AUTH = re.compile(r"(Accepted|Failed) (\S+) for (invalid user )?(.*) from (\S+) port ([0-9]+)"
                       r"(?: ssh[12]?)?(?:: (.*))?\Z", _F)
_SSH_INVALID = re.compile(r"(?:Invalid|Illegal) user (.*) from (\S+)(?: port ([0-9]+))?\Z", _F)
_SSH_RECEIVED = re.compile(r"Received disconnect from (\S+)(?: port ([0-9]+))?: ?([0-9]+): ?(.*)\Z", _F)
_SSH_CLOSED_PORT = re.compile(
    r"Connection (closed|reset) by (?:(invalid|authenticating) user (.*) )?(\S+) port ([0-9]+)\Z", _F)
_SSH_CLOSED = re.compile(r"Connection (closed|reset) by (?:(invalid|authenticating) user (.*) )?(\S+)\Z", _F)
_SSH_DISCONNECTED = re.compile(
    r"Disconnected from (?:(?:(invalid|authenticating) )?user (.*) )?(\S+) port ([0-9]+)\Z", _F)
_SSH_TOO_MANY_OLD = re.compile(
    r"Disconnecting: Too many authentication failures(?: for (invalid user )?(.*))?\Z", _F)
_SSH_TOO_MANY = re.compile(r"Disconnecting (invalid|authenticating) user (.*) (\S+) port ([0-9]+): "
                           r"Too many authentication failures\Z", _F)
_SSH_MAX_ATTEMPTS = re.compile(r"maximum authentication attempts exceeded for (invalid user )?(.*) "
                               r"from (\S+) port ([0-9]+)(?: ssh[12]?)?\Z", _F)
_SSH_PAM_MORE = re.compile(r"PAM ([0-9]+) more authentication failures?; (.*)\Z", _F)
_SSH_REVERSE = re.compile(r"reverse mapping checking getaddrinfo for (\S+) \[([^\]]*)\] failed", _F)
_SSH_MAPS_TO = re.compile(r"Address (\S+) maps to (\S+), but this does not map back to the address", _F)
_SSH_NO_IDENT = re.compile(r"Did not receive identification string from (\S+)(?: port ([0-9]+))?\Z", _F)
_SSH_NOT_ALLOWED = re.compile(r"User (.*) from (\S+) not allowed because (.*)\Z", _F)
_SSH_ROOT_REFUSED = re.compile(r"ROOT LOGIN REFUSED FROM (\S+)(?: port ([0-9]+))?\Z", _F)
_SSH_PAM_AUTH = re.compile(
    r"PAM: Authentication failure for (?:(?:illegal|invalid) user )?(.*) from (\S+)\Z", _F)

_FAIL_REASON = {"password": "wrong_password", "publickey": "key_rejected", "none": "no_method"}


def _ssh_auth(msg: str, preauth: bool) -> Parsed:
    m = _SSH_AUTH.match(msg)
    if m is None:
        return None
    ok = m[1] == "Accepted"
    method = m[2].partition("/")[0]  # keyboard-interactive/pam
    invalid = m[3] is not None
    f: Fields = {"result": "success" if ok else "failure", "user": m[4], "method": method,
                 "service": "sshd", "invalid_user": invalid}
    _src(f, m[5], m[6])
    if not ok:
        f["reason"] = "invalid_user" if invalid else _FAIL_REASON.get(method, "auth_failed")
    if m[7]:
        key_type, _, rest = m[7].partition(" ")
        f["key_type"] = key_type
        if rest:
            f["fingerprint"] = rest.partition(" ")[0]
    return ("auth.login", "notice" if ok else "warning", f)


def _ssh_invalid(msg: str, preauth: bool) -> Parsed:
    m = _SSH_INVALID.match(msg)
    if m is None:
        return None
    f: Fields = {"user": m[1], "service": "sshd", "invalid_user": True}
    _src(f, m[2], m[3])
    return ("auth.invalid_user", "warning", f)


def _ssh_received(msg: str, preauth: bool) -> Parsed:
    m = _SSH_RECEIVED.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "preauth": preauth, "reason": "client_disconnect", "code": num(m[3]),
                 "detail": m[4]}
    _src(f, m[1], m[2])
    return ("auth.disconnect", "info", f)


def _ssh_connection(msg: str, preauth: bool) -> Parsed:
    m = _SSH_CLOSED_PORT.match(msg) or _SSH_CLOSED.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "preauth": preauth, "reason": f"connection_{m[1]}"}
    if m[3] is not None:
        f["user"] = m[3]
        f["invalid_user"] = m[2] == "invalid"
    _src(f, m[4], m[5] if m.re is _SSH_CLOSED_PORT else None)
    return ("auth.disconnect", "info", f)


def _ssh_disconnected(msg: str, preauth: bool) -> Parsed:
    m = _SSH_DISCONNECTED.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "preauth": preauth, "reason": "disconnected"}
    if m[2] is not None:
        f["user"] = m[2]
        f["invalid_user"] = m[1] == "invalid"
    _src(f, m[3], m[4])
    return ("auth.disconnect", "info", f)


def _ssh_disconnecting(msg: str, preauth: bool) -> Parsed:
    f: Fields = {"service": "sshd", "reason": "too_many_failures"}
    m = _SSH_TOO_MANY_OLD.match(msg)
    if m is not None:
        if m[2] is not None:
            f["user"] = m[2]
            f["invalid_user"] = m[1] is not None
        return ("auth.too_many_failures", "warning", f)
    m = _SSH_TOO_MANY.match(msg)
    if m is None:
        return None
    f["user"] = m[2]
    f["invalid_user"] = m[1] == "invalid"
    _src(f, m[3], m[4])
    return ("auth.too_many_failures", "warning", f)


def _ssh_error(msg: str, preauth: bool) -> Parsed:
    rest = msg[7:]  # "error: "
    if rest.startswith("maximum authentication attempts exceeded"):
        m = _SSH_MAX_ATTEMPTS.match(rest)
        if m is None:
            return None
        f: Fields = {"service": "sshd", "reason": "too_many_failures", "user": m[2],
                     "invalid_user": m[1] is not None}
        _src(f, m[3], m[4])
        return ("auth.too_many_failures", "warning", f)
    if rest.startswith("PAM: Authentication failure"):
        m = _SSH_PAM_AUTH.match(rest)
        if m is None:
            return None
        f = {"result": "failure", "user": m[1], "service": "sshd", "reason": "auth_failed"}
        _src(f, m[2])
        return ("auth.login", "warning", f)
    if rest.startswith("Received disconnect"):
        return _ssh_received(rest, preauth)
    return None


def _ssh_pam_more(msg: str, preauth: bool) -> Parsed:
    m = _SSH_PAM_MORE.match(msg)
    if m is None:
        return None
    kv = _pam_kv(m[2])
    f: Fields = {"service": "sshd", "reason": "too_many_failures", "count": num(m[1])}
    if kv.get("user"):
        f["user"] = kv["user"]
    _src(f, kv.get("rhost"))
    return ("auth.too_many_failures", "warning", f)


def _ssh_reverse(msg: str, preauth: bool) -> Parsed:
    m = _SSH_REVERSE.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "check": "reverse_mapping", "hostname": m[1]}
    _src(f, m[2])
    return ("auth.break_in_attempt", "warning", f)


def _ssh_address(msg: str, preauth: bool) -> Parsed:
    m = _SSH_MAPS_TO.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "check": "address_mismatch", "hostname": m[2]}
    _src(f, m[1])
    return ("auth.break_in_attempt", "warning", f)


def _ssh_did_not(msg: str, preauth: bool) -> Parsed:
    m = _SSH_NO_IDENT.match(msg)
    if m is None:
        return None
    f: Fields = {"service": "sshd", "preauth": True, "reason": "no_identification"}
    _src(f, m[1], m[2])
    return ("auth.disconnect", "info", f)


def _ssh_user(msg: str, preauth: bool) -> Parsed:
    m = _SSH_NOT_ALLOWED.match(msg)
    if m is None:
        return None
    f: Fields = {"result": "failure", "user": m[1], "service": "sshd", "reason": "not_allowed",
                 "detail": m[3]}
    _src(f, m[2])
    return ("auth.login", "warning", f)


def _ssh_root(msg: str, preauth: bool) -> Parsed:
    m = _SSH_ROOT_REFUSED.match(msg)
    if m is None:
        return None
    f: Fields = {"result": "failure", "user": "root", "service": "sshd", "reason": "root_login_refused"}
    _src(f, m[1], m[2])
    return ("auth.login", "warning", f)


# First word -> parser: one dict lookup picks the only pattern worth trying.
_SSHD = {
    "Accepted": _ssh_auth, "Failed": _ssh_auth, "Invalid": _ssh_invalid, "Illegal": _ssh_invalid,
    "Received": _ssh_received, "Connection": _ssh_connection, "Disconnected": _ssh_disconnected,
    "Disconnecting:": _ssh_disconnecting, "Disconnecting": _ssh_disconnecting, "error:": _ssh_error,
    "PAM": _ssh_pam_more, "reverse": _ssh_reverse, "Address": _ssh_address, "Did": _ssh_did_not,
    "User": _ssh_user, "ROOT": _ssh_root,
}


def sshd(msg: str, program: str) -> Parsed:
    preauth = msg.endswith(" [preauth]")
    if preauth:
        msg = msg[:-10]
    sp = msg.find(" ", 0, 32)
    parser = _SSHD.get(msg[:sp] if sp >= 0 else msg)
    if parser is not None:
        return parser(msg, preauth)
    if msg.startswith("pam_"):
        return pam(msg, "sshd")
    return None


# ---------------------------------------------------------------- PAM

_PAM_HEAD = re.compile(r"(pam_[A-Za-z0-9_]+)\(([^:()\s]*):([a-z]*)\): ", re.ASCII)
_PAM_SESSION = re.compile(r"session (opened|closed) for user ([^\s(]*)(?:\(uid=([0-9]+)\))?"
                          r"(?: by ([^\s(]*)\(uid=([0-9]+)\))?\Z", _F)
_PAM_KEYS = frozenset(("logname", "uid", "euid", "tty", "ruser", "rhost", "user"))


def _pam_kv(text: str) -> dict[str, str]:
    """`logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root` -> the known keys."""
    kv: dict[str, str] = {}
    for token in text.split():
        key, eq, value = token.partition("=")
        if eq and key in _PAM_KEYS:
            kv[key] = value
    return kv


def pam(msg: str, program: str) -> Parsed:
    """`pam_unix(sshd:auth): ...` from any program; the service comes from the parentheses."""
    m = _PAM_HEAD.match(msg)
    if m is None:
        return None
    return _pam_body(msg[m.end():], m[2] or program, m[1])


def pam_legacy(msg: str, program: str, module: str) -> Parsed:
    """Old Red Hat style: program `sshd(pam_unix)`, message without the pam prefix."""
    return _pam_body(msg, program, module)


def _pam_body(body: str, svc: str, module: str) -> Parsed:
    service = service_name(svc)
    if body.startswith("authentication failure;"):
        kv = _pam_kv(body[23:])
        f: Fields = {"result": "failure", "service": service, "pam_module": module, "reason": "auth_failure"}
        if kv.get("tty"):
            f["tty"] = kv["tty"]
        uid = kv.get("uid", "")
        if uid.isdigit():
            f["uid"] = num(uid)
        requester = kv.get("ruser") or kv.get("logname")
        if service == "su":  # su authenticates the target: user= is whom they tried to become
            if requester:
                f["user"] = requester
            if kv.get("user"):
                f["run_as"] = kv["user"]
            return ("auth.su", "warning", f)
        if kv.get("user"):
            f["user"] = kv["user"]
        elif requester and service == "sudo":
            f["user"] = requester
        if service == "sudo":
            return ("auth.sudo", "warning", f)
        if module == "pam_unix":
            f["method"] = "password"
        _src(f, kv.get("rhost"))
        return ("auth.login", "warning", f)
    if body.startswith("session "):
        m = _PAM_SESSION.match(body)
        if m is None:
            return None
        f = {"user": m[2], "service": service, "pam_module": module}
        if m[3]:
            f["uid"] = num(m[3])
        if m[4]:
            f["by_user"] = m[4]
        if m[5]:
            f["by_uid"] = num(m[5])
        return ("auth.session_opened" if m[1] == "opened" else "auth.session_closed", "info", f)
    if body.startswith("check pass; user unknown"):
        return ("auth.invalid_user", "warning", {"service": service, "pam_module": module,
                                                 "invalid_user": True})
    if body.startswith("password changed for "):
        return accounts.password_changed(body[21:], service, module)
    return None


# ---------------------------------------------------------------- sudo

_SUDO_KEYS = {"TTY": "tty", "PWD": "pwd", "USER": "run_as", "GROUP": "run_as_group", "TSID": "tsid"}
_SUDO_REASONS = {"user NOT in sudoers": "not_in_sudoers", "command not allowed": "command_not_allowed",
                 "a password is required": "password_required",
                 "user NOT authorized on host": "not_authorized_on_host"}
_SUDO_ATTEMPTS = re.compile(r"([0-9]+) incorrect password attempts?\Z", re.ASCII)


def sudo(msg: str, program: str) -> Parsed:
    """`alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id` and the failures
    that put a reason first (`3 incorrect password attempts ; TTY=...`)."""
    msg = msg.lstrip(" ")
    if msg.startswith("pam_"):
        return pam(msg, "sudo")
    i = msg.find(" : ", 0, 300)
    if i <= 0 or " " in msg[:i]:
        return None
    rest = msg[i + 3:]
    # COMMAND= comes last and may itself contain " ; ", so split only what precedes it.
    c = rest.find("COMMAND=")
    head = rest if c < 0 else rest[:c]
    f: Fields = {"user": msg[:i], "service": "sudo"}
    reason = None
    seen_key = False
    for part in head.split(" ; "):
        part = part.strip(" ;")
        key, eq, value = part.partition("=")
        name = _SUDO_KEYS.get(key) if eq else None
        if name is not None:
            f[name] = value
            seen_key = True
        elif part and reason is None and not eq:
            reason = part
    if c < 0 and not seen_key:
        return None
    if c >= 0:
        f["command"] = rest[c + 8:]
    if reason is None:
        f["result"] = "success"
        path = accounts.sudoers_path(rest[c + 8:]) if c >= 0 else None
        if path is not None:
            f["path"] = path
            return ("account.sudoers_edited", "warning", f)
        return ("auth.sudo", "notice", f)
    f["result"] = "failure"
    m = _SUDO_ATTEMPTS.match(reason)
    if m is not None:
        f["reason"] = "wrong_password"
        f["attempts"] = num(m[1])
    else:
        f["reason"] = _SUDO_REASONS.get(reason, "other")
        f["detail"] = reason
    return ("auth.sudo", "warning", f)


# ---------------------------------------------------------------- su

_SU_UTIL = re.compile(r"(FAILED SU )?\(to (\S*)\) (.*) on (\S+)\Z", _F)               # util-linux
_SU_DEBIAN = re.compile(r"(Successful|FAILED) su for (\S*) by (.*)\Z", _F)            # shadow, old
_SU_DEBIAN_TTY = re.compile(r"([+-]) (\S+) ([^\s:]*):(\S*)\Z", _F)
_SU_RFC = re.compile(r"'su (\S*)' (failed|succeeded) for (.*) on (\S+)\Z", _F)       # RFC 3164 example


def su(msg: str, program: str) -> Parsed:
    if msg.startswith("pam_"):
        return pam(msg, "su")
    f: Fields = {"service": "su"}
    m = _SU_UTIL.match(msg)
    if m is not None:
        ok, f["run_as"], f["user"], f["tty"] = m[1] is None, m[2], m[3], m[4]
    elif (m := _SU_DEBIAN.match(msg)) is not None:
        ok, f["run_as"], f["user"] = m[1] == "Successful", m[2], m[3]
    elif (m := _SU_DEBIAN_TTY.match(msg)) is not None:
        ok, f["tty"], f["user"], f["run_as"] = m[1] == "+", m[2], m[3], m[4]
    elif (m := _SU_RFC.match(msg)) is not None:
        ok, f["run_as"], f["user"], f["tty"] = m[2] == "succeeded", m[1], m[3], m[4]
    else:
        return None
    f["result"] = "success" if ok else "failure"
    return ("auth.su", "notice" if ok else "warning", f)


# ---------------------------------------------------------------- login, gdm, klogind, ftpd

_ROOT_LOGIN = re.compile(r"ROOT LOGIN +(?:ON|on) '?([^'\s]+)'?(?: FROM (\S+))?\Z", _F)
_LOGIN_ON = re.compile(r"LOGIN ON (\S+) BY (\S+)(?: FROM (\S+))?\Z", _F)
_FAILED_LOGIN = re.compile(r"FAILED LOGIN \(?([0-9]+)\)? (?:FROM|on) '?([^'\s]*)'? FOR '?(.*?)'?, (.*)\Z", _F)
_KLOGIN_FAILED = re.compile(r"Authentication failed from (\S+) \(([^)]*)\): ?(.*)\Z", _F)
_FTP_ANON = re.compile(r"ANONYMOUS FTP LOGIN FROM ([^\s,]+),? *(.*)\Z", _F)


def _tty_or_host(f: Fields, where: str | None) -> None:
    if not where:
        return
    if where.startswith(("tty", "/dev/", "pts", ":")):
        f["tty"] = where
    else:
        _src(f, where)


def login(msg: str, program: str) -> Parsed:
    if msg.startswith("pam_"):
        return pam(msg, "login")
    f: Fields = {"service": "login"}
    if (m := _ROOT_LOGIN.match(msg)) is not None:
        f.update(result="success", user="root", tty=m[1])
        _src(f, m[2])
        return ("auth.login", "notice", f)
    if (m := _LOGIN_ON.match(msg)) is not None:
        f.update(result="success", user=m[2], tty=m[1])
        _src(f, m[3])
        return ("auth.login", "notice", f)
    if (m := _FAILED_LOGIN.match(msg)) is not None:
        f.update(result="failure", user=m[3], reason="auth_failure", detail=m[4], attempts=num(m[1]))
        _tty_or_host(f, m[2])
        return ("auth.login", "warning", f)
    return None


def gdm(msg: str, program: str) -> Parsed:
    if msg.startswith("pam_"):
        return pam(msg, "gdm")
    if msg.startswith("Couldn't authenticate user"):
        return ("auth.login", "warning", {"result": "failure", "service": "gdm", "reason": "auth_failure"})
    return None


def klogind(msg: str, program: str) -> Parsed:
    m = _KLOGIN_FAILED.match(msg)
    if m is None:
        return None
    f: Fields = {"result": "failure", "service": "klogind", "method": "kerberos", "reason": "auth_failure",
                 "detail": m[3]}
    _src(f, m[1])
    if m[2] and m[2] != m[1]:
        f["src_host"] = m[2]
    return ("auth.login", "warning", f)


def ftpd(msg: str, program: str) -> Parsed:
    m = _FTP_ANON.match(msg)
    if m is None:
        return None
    f: Fields = {"result": "success", "user": "anonymous", "service": "ftpd", "method": "anonymous"}
    _src(f, m[1])
    return ("auth.login", "notice", f)


HANDLERS: dict[str, Handler] = {
    "sshd": sshd, "sshd-session": sshd, "sshd-auth": sshd,
    "sudo": sudo, "su": su,
    "login": login, "--": login,  # old util-linux login logs `ROOT LOGIN ON tty2` as `-- root[2421]`
    "gdm": gdm, "gdm-binary": gdm, "gdm-password": gdm, "gdm-session-worker": gdm, "gdm-autologin": gdm,
    "klogind": klogind, "ftpd": ftpd,
}
