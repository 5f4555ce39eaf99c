"""smartctl (smartmontools) for the disk probe: find it, run it within bounds, parse its `--json`.

The parsers are pure (text in, `DiskHealth` / device list out) and never raise on bad input:
truncated or garbled output, an old smartctl, a device without SMART all come back as a status,
so the tests drive them with JSON captured from real disks (tests/fixtures/disk/).

smartctl's exit status is a bitmask (man smartctl, EXIT STATUS): only bits 0-1 mean the run
itself failed; bits 2-7 describe the disk and come with valid output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warden.agent.probes._tools import DEFAULT_TOOL_PATH, run_tool
from warden.v1 import records_pb2

__all__ = [
    "EXIT_CMDLINE",
    "EXIT_COMMAND_FAILED",
    "EXIT_DISK_FAILING",
    "EXIT_OPEN_FAILED",
    "MAX_OUTPUT_BYTES",
    "Reading",
    "RunResult",
    "ScanDevice",
    "ScanResult",
    "Smartctl",
    "find_smartctl",
    "parse_device",
    "parse_scan",
    "run_bounded",
]

EXIT_CMDLINE = 1 << 0  # the command line did not parse
EXIT_OPEN_FAILED = 1 << 1  # device open failed, no IDENTIFY answer, or in a low-power mode (-n)
EXIT_COMMAND_FAILED = 1 << 2  # some SMART/ATA command failed or a checksum was wrong: data may be partial
EXIT_DISK_FAILING = 1 << 3  # SMART status check returned "DISK FAILING"
# Bits 4-7: prefail attributes <= threshold now / in the past, error log entries, self-test errors.
_EXIT_DISK_BITS = {
    EXIT_COMMAND_FAILED: "some SMART command failed",
    EXIT_DISK_FAILING: "SMART status DISK FAILING",
    1 << 4: "prefail attributes at or below threshold",
    1 << 5: "attributes were at or below threshold in the past",
    1 << 6: "device error log has entries",
    1 << 7: "self-test log has errors",
}

# smartctl -x on a big SAS disk is ~100 KB; anything near this is not smartctl talking.
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
_MAX_MESSAGE_CHARS = 300

_PERMISSION = re.compile(r"permission denied|operation not permitted", re.IGNORECASE)
_LOW_POWER = re.compile(r"\bis in (?:STANDBY|SLEEP|IDLE)\b", re.IGNORECASE)
_LEADING_INT = re.compile(r"\s*(\d+)")

_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


# --- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None when the process was killed (timeout, output cap) or never ran
    stdout: bytes | str
    error: str = ""  # why the run gave no usable output, "" if it ran to completion


def find_smartctl(name: str) -> str | None:
    """The smartctl executable: `name` if it is a path, else searched on PATH and the sbin dirs
    (an agent run by systemd may have no sbin on its PATH)."""
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    dirs += [d for d in DEFAULT_TOOL_PATH.split(os.pathsep) if d not in dirs]
    return shutil.which(name, path=os.pathsep.join(dirs))


def run_bounded(argv: Sequence[str], timeout: float, max_bytes: int = MAX_OUTPUT_BYTES) -> RunResult:
    """Run `argv` (argv[0] a path, as `find_smartctl` gives) with the probes' bounded tool runner.

    A non-zero exit status is not an error here: smartctl's is a bitmask describing the disk,
    and its JSON on stdout says what happened.
    """
    res = run_tool(argv, timeout=timeout, max_bytes=max_bytes, path=DEFAULT_TOOL_PATH)
    if res.status == "timeout":
        return RunResult(None, res.stdout, f"timed out after {timeout:g}s")
    if res.truncated:
        return RunResult(None, res.stdout, f"output exceeds {max_bytes} bytes")
    if res.status == "missing":
        return RunResult(None, "", f"cannot run {argv[0]}: not found or not executable")
    if res.returncode is None:
        detail = "permission denied" if res.status == "denied" else res.stderr.strip()[:200]
        return RunResult(None, res.stdout, f"cannot run {argv[0]}: {detail}")
    return RunResult(res.returncode, res.stdout)


# --- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanDevice:
    name: str  # "/dev/sda", "/dev/bus/0"
    type: str  # smartctl's -d TYPE: "sat", "nvme", "megaraid,0"; "" lets smartctl choose
    protocol: str = ""
    open_error: str = ""  # --scan-open could not open it
    label: str = ""  # the `device` label: name, plus the type when several share a name

    def argv(self) -> list[str]:
        return ["--device", self.type, self.name] if self.type else [self.name]


@dataclass(frozen=True)
class ScanResult:
    devices: list[ScanDevice] = field(default_factory=list)
    error: str = ""
    permission_denied: bool = False


@dataclass(frozen=True)
class Reading:
    """One device's `smartctl --json --info --health --attributes`, or why there is none."""

    label: str
    health: records_pb2.DiskHealth | None = None  # None: nothing usable was read
    passed: bool | None = None  # SMART overall verdict; None when smartctl gave none
    exit_status: int | None = None
    error: str = ""
    smart_available: bool = True  # False: the device has no SMART (a virtual disk, a USB stick)
    permission_denied: bool = False
    low_power: bool = False  # not read because it is spun down (-n standby): nothing is wrong

    @property
    def disk_problems(self) -> list[str]:
        """What exit-status bits 2-7 say about the disk."""
        status = self.exit_status or 0
        return [text for bit, text in _EXIT_DISK_BITS.items() if status & bit]


def parse_scan(text: bytes | str, returncode: int | None = None) -> ScanResult:
    """`smartctl --scan-open --json`: the devices smartctl can address (and open)."""
    doc, error = _load(text)
    if doc is None:
        return ScanResult(error=error)
    status = returncode if returncode is not None else _int(_get(doc, "smartctl", "exit_status")) or 0
    if status & (EXIT_CMDLINE | EXIT_OPEN_FAILED):
        msg = _messages(doc)
        return ScanResult(error=msg or f"smartctl --scan-open exited with {status}",
                          permission_denied=bool(_PERMISSION.search(msg)))
    raw = doc.get("devices", [])
    if not isinstance(raw, list):
        return ScanResult(error="smartctl --scan-open: 'devices' is not a list")
    found: list[ScanDevice] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            continue
        found.append(
            ScanDevice(
                name=item["name"],
                type=_str(item.get("type")),
                protocol=_str(item.get("protocol")),
                open_error=_str(item.get("open_error")),
            )
        )
    names = [d.name for d in found]
    devices = [
        ScanDevice(d.name, d.type, d.protocol, d.open_error,
                   label=d.name if names.count(d.name) == 1 else f"{d.name} [{d.type}]")
        for d in found
    ]
    usable = [d for d in devices if not d.open_error]
    if devices and not usable:
        errors = "; ".join(d.open_error for d in devices)
        return ScanResult(error=_clip(errors), permission_denied=bool(_PERMISSION.search(errors)))
    return ScanResult(devices=usable)


def parse_device(text: bytes | str, label: str = "", returncode: int | None = None) -> Reading:
    """One device's JSON output -> a `Reading`. `returncode` (the process's) wins over the
    `exit_status` in the JSON; `label` names the device when the JSON does not."""
    doc, error = _load(text)
    if doc is None:
        return Reading(label=label, exit_status=returncode, error=error)
    status = returncode if returncode is not None else _int(_get(doc, "smartctl", "exit_status"))
    label = label or _str(_get(doc, "device", "name"))
    bits = status or 0
    if bits & (EXIT_CMDLINE | EXIT_OPEN_FAILED):
        msg = _messages(doc) or ("command line refused" if bits & EXIT_CMDLINE else "device open failed")
        return Reading(
            label=label,
            exit_status=status,
            error=msg,
            permission_denied=bool(_PERMISSION.search(msg)),
            low_power=bool(_LOW_POWER.search(msg)),
        )
    if _get(doc, "smart_support", "available") is False:
        return Reading(label=label, exit_status=status, error="device has no SMART support",
                       smart_available=False)
    if _get(doc, "smart_support", "enabled") is False:
        return Reading(label=label, exit_status=status,
                       error="SMART is disabled on the device (smartctl --smart=on enables it)")
    if not isinstance(doc.get("device"), dict) and "smart_status" not in doc:
        return Reading(label=label, exit_status=status,
                       error=_messages(doc) or "no device data in smartctl output")

    passed = _get(doc, "smart_status", "passed")
    if not isinstance(passed, bool):
        # No verdict in the JSON; bit 3 still says "failing" (older smartctl, odd transports).
        passed = False if bits & EXIT_DISK_FAILING else None
    nvme = doc.get("nvme_smart_health_information_log")
    nvme = nvme if isinstance(nvme, dict) else {}
    attrs = _ata_attributes(doc)
    health = records_pb2.DiskHealth(
        device=label,
        model=_model(doc),
        serial=_str(doc.get("serial_number")),
        protocol=_str(_get(doc, "device", "protocol")),
        smart_passed=bool(passed),
        reallocated_sectors=_first(
            attrs.get(5), _int(doc.get("scsi_grown_defect_list"))  # SCSI: the grown defect list
        ),
        pending_sectors=_first(attrs.get(197)),
        temperature_c=_first(
            _int(_get(doc, "temperature", "current"), _INT32_MAX), _int(nvme.get("temperature"), _INT32_MAX)
        ),
        power_on_hours=_first(_int(_get(doc, "power_on_time", "hours")), _int(nvme.get("power_on_hours"))),
        media_errors=_first(_int(nvme.get("media_errors"))),
        percentage_used=_first(_int(nvme.get("percentage_used"), _INT32_MAX)),
    )
    return Reading(label=label, health=health, passed=passed, exit_status=status)


def _load(text: bytes | str) -> tuple[dict[str, Any] | None, str]:
    if not text:
        return None, "smartctl printed nothing"
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        return None, f"smartctl output is not valid JSON (truncated or garbled): {_clip(str(e))}"
    if not isinstance(doc, dict):
        return None, "smartctl output is not a JSON object"
    version = doc.get("json_format_version")
    if not (isinstance(version, list) and version and version[0] == 1):
        # Major 1 is the only format there is; another is a change we have not read.
        return None, f"unsupported smartctl json_format_version {_clip(repr(version))}"
    return doc, ""


def _messages(doc: Mapping[str, Any]) -> str:
    msgs = _get(doc, "smartctl", "messages")
    if not isinstance(msgs, list):
        return ""
    texts = [m["string"] for m in msgs if isinstance(m, dict) and isinstance(m.get("string"), str)]
    return _clip("; ".join(texts))


def _ata_attributes(doc: Mapping[str, Any]) -> dict[int, int]:
    """ATA attribute id -> raw count. smartctl's raw string is the value as the drive
    database decodes it ("25 (Min/Max 19/39)"): its leading number is the count, whereas
    raw.value is the undecoded 48-bit field some vendors pack with other data."""
    table = _get(doc, "ata_smart_attributes", "table")
    out: dict[int, int] = {}
    if not isinstance(table, list):
        return out
    for attr in table:
        if not isinstance(attr, dict) or not isinstance(attr.get("id"), int):
            continue
        raw = attr.get("raw")
        if not isinstance(raw, dict):
            continue
        m = _LEADING_INT.match(raw["string"]) if isinstance(raw.get("string"), str) else None
        value = _int(int(m.group(1))) if m else _int(raw.get("value"))
        if value is not None:
            out[attr["id"]] = value
    return out


def _model(doc: Mapping[str, Any]) -> str:
    model = _str(doc.get("model_name")) or _str(doc.get("scsi_model_name"))
    if model:
        return model
    return " ".join(p for p in (_str(doc.get("scsi_vendor")), _str(doc.get("scsi_product"))) if p)


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _int(value: Any, limit: int = _INT64_MAX) -> int | None:
    """A non-negative integer that fits the proto field, else None (bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        return None
    return value


def _first(*values: int | None) -> int:
    """The first reported value; -1 (the proto's "not reported") when none is."""
    return next((v for v in values if v is not None), -1)


def _str(value: Any) -> str:
    return value.strip()[:_MAX_MESSAGE_CHARS] if isinstance(value, str) else ""


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 3] + "..."


# --- the tool -----------------------------------------------------------------------------------

Runner = Callable[[Sequence[str], float], RunResult]


class Smartctl:
    """smartctl at `executable`, each invocation bounded by `timeout` seconds."""

    # --info --health --attributes: identity, verdict, ATA attributes / NVMe health log.
    # --nocheck=standby: a spun-down disk is not woken up; smartctl exits with bit 1 set.
    READ_ARGS = ("--json", "--info", "--health", "--attributes", "--nocheck=standby")

    def __init__(self, executable: str, timeout: float, run: Runner | None = None) -> None:
        self.executable = executable
        self.timeout = timeout
        self._run: Runner = run or run_bounded

    def scan(self) -> ScanResult:
        res = self._run([self.executable, "--scan-open", "--json"], self.timeout)
        if res.returncode is None:
            return ScanResult(error=res.error, permission_denied="permission denied" in res.error)
        return parse_scan(res.stdout, res.returncode)

    def read(self, device: ScanDevice) -> Reading:
        label = device.label or device.name
        res = self._run([self.executable, *self.READ_ARGS, *device.argv()], self.timeout)
        if res.returncode is None:
            return Reading(label=label, error=res.error, permission_denied="permission denied" in res.error)
        return parse_device(res.stdout, label, res.returncode)
