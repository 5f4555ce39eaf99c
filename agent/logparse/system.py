"""System messages: systemd unit failures, kernel OOM kills, segfaults, block I/O, disk and file
system errors, boots and shutdowns.

Kinds (severity):
  system.service_failed  (error)    unit, description, phase (start | exit | result | start_limit),
                                    code, status, exit_status, result
  system.oom_kill        (error)    pid, process (the victim), phase (invoked | details | killed |
                                    reaped | unit), cgroup, uid, constraint, unit, killer
  system.segfault        (warning)  process, pid, fault, address, ip, sp, error, object
  kernel.io_error        (error)    device, sector | block, op, detail
  kernel.disk_error      (error)    device, detail                 (ATA, SCSI, NVMe command failures)
  kernel.fs_error        (error, critical when it goes read-only)  fs, device, level, detail
  system.boot            (notice)   kernel_version
  system.shutdown        (notice)   action (reboot | poweroff | halt | shutdown), detail
  system.syslog_restart  (info)     the syslog daemon (re)started: at boot, but also on every log
                                    rotation (6 of the 7 in the loghub Linux sample), so it is not
                                    reported as a boot.

One OOM kill logs several lines (invoked, details, killed, reaped) and one unit failure up to three
(exit, result, start): each becomes an event with its `phase`, so a rule can count one phase.
Kernel messages are recognised by cheap prefix and substring tests before any regex.
"""

from __future__ import annotations

import re

from warden.agent.logparse.syslog import Fields, Handler, Parsed, num

__all__ = ["HANDLERS", "headerless", "kernel", "systemd"]

_F = re.ASCII | re.DOTALL

# ---------------------------------------------------------------- kernel

_OOM_KILLED = re.compile(r"Kill(?:ed)? process ([0-9]+) \((.{1,64}?)\)(?=[ ,.]|\Z)", _F)
_OOM_REAPED = re.compile(r"oom_reaper: reaped process ([0-9]+) \((.{1,64}?)\)(?=[ ,.]|\Z)", _F)
_SEGFAULT = re.compile(
    r"(.{1,64}?)\[([0-9]+)\]: segfault at ([0-9a-fA-F]+) ip ([0-9a-fA-F]+) sp ([0-9a-fA-F]+) "
    r"error ([0-9a-fA-F]+)(?: in ([^\[\s]+))?", _F)
_TRAP = re.compile(  # `traps: x[1] general protection fault ip:...`; older kernels lack `traps: `
    r"(?:traps: )?(.{1,64}?)\[([0-9]+)\] (?:trap )?([a-z ]{1,40}?)(?: fault)? "
    r"ip:([0-9a-fA-F]+) sp:([0-9a-fA-F]+) error:([0-9a-fA-F]+)(?: in ([^\[\s]+))?", _F)
_IO_DEV = re.compile(r"dev(?:ice)? ([^,\s]{1,64})", re.ASCII)
_IO_SECTOR = re.compile(r"(sector|logical block) ([0-9]{1,20})", re.ASCII)
_IO_OP = re.compile(r" op 0x[0-9a-f]+:\(([A-Z_]{1,32})\)", re.ASCII)
_FS = re.compile(
    r"(EXT[234]|XFS|BTRFS|FAT|F2FS|NILFS)(?:-fs)? ?"
    r"(error|critical|crit|emerg|alert|warning|warn|info|notice)? ?"
    r"\((?:device )?([^)\s]{0,64})\):? ?(.*)\Z", _F)
_FS_ERROR_WORDS = ("orrupt", "I/O error", "Internal error", "shut down", "hutting down filesystem",
                   "read-only", "aborted journal", "error count", "IO failure")
_ATA = re.compile(r"(ata[0-9]{1,4}(?:\.[0-9]{1,3})?): (.*)\Z", _F)
_ATA_ERRORS = ("failed command", "exception Emask", "error: {", "status: {")
_SCSI = re.compile(r"(?:sd|sr) [0-9:]{1,32}: \[([a-z0-9]{1,16})\] (.*)\Z", _F)
_SCSI_ERRORS = ("FAILED Result", "Medium Error", "Hardware Error", "Unrecovered", "timing out command")
_NVME = re.compile(r"nvme (nvme[0-9]{1,4}): (.*)\Z", _F)
_NVME_ERRORS = ("timeout", "controller is down", "Removing after probe failure", "I/O Error", "failed")
_REBOOT_ACTIONS = {"Restarting system": "reboot", "Power down": "poweroff", "System halted": "halt"}


def _strip_uptime(msg: str) -> str:
    """`[ 1234.567890] text` (dmesg in syslog), also with a caller id `[ 9692.84][   C87] text`
    -> `text`."""
    if msg.startswith("["):
        end = msg.find("]", 1, 24)
        if end > 0 and msg[1:end].strip().replace(".", "", 1).isdigit():
            msg = msg[end + 1:].lstrip(" ")
            if msg.startswith("["):
                end = msg.find("]", 1, 16)
                caller = msg[1:end].strip()
                if end > 0 and caller[:1] in ("C", "T") and caller[1:].isdigit():
                    msg = msg[end + 1:].lstrip(" ")
    return msg


def kernel(msg: str, program: str) -> Parsed:
    msg = _strip_uptime(msg)
    if msg.startswith("Linux version "):
        return ("system.boot", "notice", {"kernel_version": msg[14:].partition(" ")[0]})
    # Each test is a C-speed substring scan; a parser that declines lets the next one look.
    if ("I/O error" in msg or "critical " in msg) and (r := _fs(msg) or _io(msg) or _disk(msg)):
        return r
    if ("oom" in msg or "ut of memory" in msg or "Killed process" in msg) and (r := _oom(msg)):
        return r
    if (" segfault at " in msg or " general protection" in msg or msg.startswith("traps: ")) and \
            (r := _segfault(msg)):
        return r
    if msg.startswith(("EXT", "XFS", "BTRFS", "FAT", "F2FS", "NILFS", "JBD2")) and (r := _fs(msg)):
        return r
    if msg.startswith(("ata", "sd ", "sr ", "nvme ")) and (r := _disk(msg)):
        return r
    if msg.startswith("reboot: "):
        action = _REBOOT_ACTIONS.get(msg[8:].rstrip("."))
        if action is not None:
            return ("system.shutdown", "notice", {"action": action, "detail": msg})
    return None


def _oom(msg: str) -> Parsed:
    f: Fields
    if msg.startswith("oom-kill:"):
        kv = dict(p.partition("=")[::2] for p in msg[9:].split(","))
        f = {"phase": "details"}
        if kv.get("task"):
            f["process"] = kv["task"]
        for key in ("pid", "uid"):
            if kv.get(key, "").isdigit():
                f[key] = num(kv[key])
        if kv.get("constraint"):
            f["constraint"] = kv["constraint"]
        return ("system.oom_kill", "error", f)
    if msg.startswith("oom_reaper: "):
        m = _OOM_REAPED.match(msg)
        if m is None:
            return None
        return ("system.oom_kill", "error", {"phase": "reaped", "pid": num(m[1]), "process": m[2]})
    i = msg.find(" invoked oom-killer", 0, 96)
    if i > 0:
        return ("system.oom_kill", "error", {"phase": "invoked", "process": msg[:i]})
    k = msg.find("Kill")
    if k < 0:
        return None
    m = _OOM_KILLED.match(msg, k)
    if m is None:
        return None
    f = {"phase": "killed", "pid": num(m[1]), "process": m[2], "cgroup": "cgroup" in msg[:k]}
    return ("system.oom_kill", "error", f)


def _segfault(msg: str) -> Parsed:
    m = _SEGFAULT.match(msg)
    if m is not None:
        f: Fields = {"process": m[1], "pid": num(m[2]), "fault": "segfault", "address": m[3], "ip": m[4],
                     "sp": m[5], "error": m[6]}
    elif (m := _TRAP.match(msg)) is not None:
        f = {"process": m[1], "pid": num(m[2]), "fault": m[3].replace(" ", "_"), "ip": m[4], "sp": m[5],
             "error": m[6]}
    else:
        return None
    if m[7]:
        f["object"] = m[7]
    return ("system.segfault", "warning", f)


def _io(msg: str) -> Parsed:
    if "I/O error" not in msg and " error, dev " not in msg:  # "critical medium error, dev sda"
        return None
    f: Fields = {"detail": msg}
    m = _IO_DEV.search(msg)
    if m is not None:
        f["device"] = m[1]
    m = _IO_SECTOR.search(msg)
    if m is not None:
        f["sector" if m[1] == "sector" else "block"] = num(m[2])
    m = _IO_OP.search(msg)
    if m is not None:
        f["op"] = m[1]
    return ("kernel.io_error", "error", f)


def _fs(msg: str) -> Parsed:
    if msg.startswith("JBD2: "):
        if "error" not in msg:
            return None
        f: Fields = {"fs": "jbd2", "detail": msg[6:]}
        on = msg.rfind(" on ")
        if on > 0:
            f["device"] = msg[on + 4:].partition(" ")[0].rpartition("-")[0] or msg[on + 4:]
        return ("kernel.fs_error", "error", f)
    m = _FS.match(msg)
    if m is None:
        return None
    level, detail = m[2], m[4]
    if level not in ("error", "critical", "crit", "emerg", "alert") and not any(
            w in detail for w in _FS_ERROR_WORDS):
        return None
    f = {"fs": m[1].lower(), "device": m[3], "detail": detail}
    if level:
        f["level"] = level
    return ("kernel.fs_error", "critical" if "read-only" in detail else "error", f)


def _disk(msg: str) -> Parsed:
    for pattern, words in ((_ATA, _ATA_ERRORS), (_SCSI, _SCSI_ERRORS), (_NVME, _NVME_ERRORS)):
        m = pattern.match(msg)
        if m is not None:
            if any(w in m[2] for w in words):
                return ("kernel.disk_error", "error", {"device": m[1], "detail": m[2]})
            return None
    return None


# ---------------------------------------------------------------- systemd and init

_UNIT_SUFFIXES = (".service", ".socket", ".mount", ".timer", ".target", ".path", ".scope", ".swap",
                  ".device", ".slice", ".automount")
_PROCESS_EXITED = re.compile(r"(Main|Control) process exited, code=([a-z]{1,16}),? status=(\S{1,64})\Z", _F)
_FAILED_RESULT = re.compile(r"Failed with result '([^']{0,64})'\.?\Z", _F)
_ENTERED_FAILED = re.compile(r"Unit (\S+) entered failed state\.?\Z", _F)
_SHUTDOWN_ACTIONS = {"rebooting": "reboot", "powering down": "poweroff", "halting": "halt"}


def _service_failed(f: Fields) -> Parsed:
    return ("system.service_failed", "error", f)


def systemd(msg: str, program: str) -> Parsed:
    if msg.startswith("Failed to start "):
        what = msg[16:].rstrip(".")
        unit, sep, description = what.partition(" - ")  # systemd >= 249: `unit - Description`
        if sep and unit and " " not in unit:
            return _service_failed({"phase": "start", "unit": unit, "description": description})
        if what.endswith(_UNIT_SUFFIXES) and " " not in what:
            return _service_failed({"phase": "start", "unit": what})
        return _service_failed({"phase": "start", "description": what})
    if msg.startswith("Shutting down"):
        return ("system.shutdown", "notice", {"action": "shutdown", "detail": msg})
    if msg.startswith("Unit "):
        m = _ENTERED_FAILED.match(msg)
        if m is not None:
            return _service_failed({"phase": "result", "unit": m[1]})
        return None
    colon = msg.find(": ", 0, 256)
    if colon <= 0 or not msg[:colon].endswith(_UNIT_SUFFIXES):
        return None
    unit, rest = msg[:colon], msg[colon + 2:]
    if rest.startswith(("Main process exited", "Control process exited")):
        m = _PROCESS_EXITED.match(rest)
        if m is None or (m[2] == "exited" and m[3].startswith("0/")) or m[3] == "0":
            return None
        f: Fields = {"phase": "exit", "unit": unit, "process": m[1].lower(), "code": m[2], "status": m[3]}
        code = m[3].partition("/")[0]
        if m[2] == "exited" and code.isdigit():
            f["exit_status"] = num(code)
        return _service_failed(f)
    if rest.startswith("Failed with result"):
        m = _FAILED_RESULT.match(rest)
        if m is None:
            return None
        return _service_failed({"phase": "result", "unit": unit, "result": m[1]})
    if rest.startswith("Start request repeated too quickly"):
        return _service_failed({"phase": "start_limit", "unit": unit})
    if rest.startswith("Unit entered failed state"):
        return _service_failed({"phase": "result", "unit": unit})
    if rest.startswith("A process of this unit has been killed by the OOM killer"):
        return ("system.oom_kill", "error", {"phase": "unit", "unit": unit})
    return None


def oomd(msg: str, program: str) -> Parsed:
    """systemd-oomd kills whole cgroups before the kernel has to: `Killed /x.scope due to ...`."""
    if msg.startswith("Killed "):
        m = _OOM_KILLED.match(msg)
        f: Fields = {"phase": "killed", "killer": "systemd-oomd"}
        if m is not None:
            f.update(pid=num(m[1]), process=m[2])
        else:
            f["cgroup_path"] = msg[7:].partition(" ")[0]
        return ("system.oom_kill", "error", f)
    return None


def logind(msg: str, program: str) -> Parsed:
    if msg.startswith("System is "):
        action = _SHUTDOWN_ACTIONS.get(msg[10:].rstrip("."))
        if action is not None:
            return ("system.shutdown", "notice", {"action": action, "detail": msg})
    return None


def shutdown(msg: str, program: str) -> Parsed:
    # sysvinit `shutdown[1234]: shutting down for system reboot`, systemd-shutdownd `Shutting down at ...`
    low = msg.lower()
    if not low.startswith("shutting down"):
        return None
    action = "reboot" if "reboot" in low else "halt" if "halt" in low else \
        "poweroff" if "poweroff" in low or "power-off" in low else "shutdown"
    return ("system.shutdown", "notice", {"action": action, "detail": msg})


def init(msg: str, program: str) -> Parsed:
    if msg.startswith("Switching to runlevel: "):
        level = msg[23:].strip()
        if level in ("0", "6"):
            action = "reboot" if level == "6" else "halt"
            return ("system.shutdown", "notice", {"action": action, "detail": msg})
        return None
    return systemd(msg, program)


def syslogd(msg: str, program: str) -> Parsed:
    # sysklogd `syslogd 1.4.1: restart.`; rsyslogd `[origin software="rsyslogd" ...] start`
    if msg.startswith("restart") or (msg.startswith("[origin ") and msg.endswith("] start")):
        return ("system.syslog_restart", "info", {"daemon": program})
    return None


_LOGROTATE = re.compile(r"ALERT exited abnormally with \[([0-9]{1,10})\]\Z", _F)


def logrotate(msg: str, program: str) -> Parsed:
    # Red Hat's cron.daily/logrotate reports a failed run through `logger -t logrotate`.
    m = _LOGROTATE.match(msg)
    if m is None:
        return None
    return _service_failed({"phase": "exit", "unit": "logrotate", "code": "exited", "status": m[1],
                            "exit_status": num(m[1])})


_LAST_BOOT = re.compile(r"reboot +system boot +(\S+)", re.ASCII)
_LAST_DOWN = re.compile(r"shutdown +system down +(\S+)", re.ASCII)


def headerless(text: str) -> Parsed:
    """Lines without a syslog header: `last -x` (wtmp) boot and shutdown records."""
    if text.startswith("reboot "):
        m = _LAST_BOOT.match(text)
        if m is not None:
            return ("system.boot", "notice", {"kernel_version": m[1], "detail": "wtmp"})
    elif text.startswith("shutdown "):
        m = _LAST_DOWN.match(text)
        if m is not None:
            f: Fields = {"action": "shutdown", "kernel_version": m[1], "detail": "wtmp"}
            return ("system.shutdown", "notice", f)
    return None


HANDLERS: dict[str, Handler] = {
    "kernel": kernel, "systemd": systemd, "init": init, "systemd-logind": logind, "systemd-oomd": oomd,
    "systemd-shutdownd": shutdown, "shutdown": shutdown,
    "syslogd": syslogd, "rsyslogd": syslogd, "logrotate": logrotate,
}
