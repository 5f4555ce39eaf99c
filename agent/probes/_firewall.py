"""Linux backend of the `firewall` inventory: nftables, iptables, ufw and firewalld.

Each backend is asked through its own tool; a missing tool, a permission error or output
that does not parse becomes that backend's `error`, and the others are still reported.
`active` means the backend filters something: rules present, a dropping base-chain policy,
ufw "Status: active", firewalld "running".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from warden.agent.probes._tools import ToolResult
from warden.v1 import records_pb2

__all__ = [
    "collect_firewall",
    "parse_firewalld_state",
    "parse_iptables",
    "parse_nft_json",
    "parse_ufw_status",
]

Runner = Callable[[Sequence[str]], ToolResult]


def collect_firewall(run: Runner) -> records_pb2.FirewallSection:
    backends = [_nftables(run), _iptables(run), _ufw(run), _firewalld(run)]
    return records_pb2.FirewallSection(backends=backends, active=any(b.active for b in backends))


def _backend(name: str, res: ToolResult, tool: str) -> records_pb2.FirewallBackend | None:
    """The backend as far as a failed run tells; None when the run succeeded (parse it)."""
    if res.status == "missing":
        return records_pb2.FirewallBackend(name=name, present=False, error=res.describe(tool))
    if res.status != "ok":
        return records_pb2.FirewallBackend(name=name, present=True, error=res.describe(tool))
    return None


def _nftables(run: Runner) -> records_pb2.FirewallBackend:
    res = run(["nft", "-j", "list", "ruleset"])
    failed = _backend("nftables", res, "nft")
    if failed is not None:
        return failed
    rules, drops, error = parse_nft_json(res.stdout, res.truncated)
    return records_pb2.FirewallBackend(
        name="nftables", present=True, active=rules > 0 or drops, rule_count=rules, error=error
    )


def _iptables(run: Runner) -> records_pb2.FirewallBackend:
    total, drops, errors, present = 0, False, [], False
    for tool in ("iptables-save", "ip6tables-save"):
        res = run([tool])
        if res.status == "missing" and tool == "iptables-save":
            res = run(["iptables", "-S"])  # some minimal installs ship iptables without -save
            tool = "iptables -S"
        if res.status == "missing":
            continue
        present = True
        if res.status != "ok":
            errors.append(res.describe(tool))
            continue
        rules, dropping, error = parse_iptables(res.stdout, res.truncated)
        total += rules
        drops = drops or dropping
        if error:
            errors.append(f"{tool}: {error}")
    if not present:
        return records_pb2.FirewallBackend(name="iptables", present=False, error="iptables not installed")
    return records_pb2.FirewallBackend(
        name="iptables", present=True, active=total > 0 or drops, rule_count=total, error="; ".join(errors)
    )


def _ufw(run: Runner) -> records_pb2.FirewallBackend:
    res = run(["ufw", "status", "verbose"])
    failed = _backend("ufw", res, "ufw")
    if failed is not None:
        return failed
    active, rules, error = parse_ufw_status(res.stdout)
    return records_pb2.FirewallBackend(name="ufw", present=True, active=active, rule_count=rules, error=error)


def _firewalld(run: Runner) -> records_pb2.FirewallBackend:
    res = run(["firewall-cmd", "--state"])
    if res.status == "failed" and "not running" in (res.stdout + res.stderr):
        # firewall-cmd exits 252 for "not running": an answer, not a failure.
        return records_pb2.FirewallBackend(name="firewalld", present=True, active=False)
    failed = _backend("firewalld", res, "firewall-cmd")
    if failed is not None:
        return failed
    active, error = parse_firewalld_state(res.stdout)
    return records_pb2.FirewallBackend(name="firewalld", present=True, active=active, error=error)


# --- parsers: pure functions of the tool's text, tested on captured outputs ----------------------


def parse_nft_json(text: str, truncated: bool = False) -> tuple[int, bool, str]:
    """`nft -j list ruleset` -> (rule count, a base chain drops by policy, error)."""
    try:
        doc = json.loads(text)
        items = doc["nftables"]
        if not isinstance(items, list):
            raise TypeError("'nftables' is not a list")
    except (ValueError, KeyError, TypeError) as e:
        # A cut-off ruleset still proves rules exist: count what arrived, as a lower bound.
        rules = len(re.findall(r'\{\s*"rule"\s*:', text))
        why = "output truncated" if truncated else f"unparseable output ({type(e).__name__})"
        return rules, False, why + (f"; at least {rules} rules" if rules else "")
    rules = 0
    drops = False
    for item in items:
        if not isinstance(item, dict):
            continue
        if "rule" in item:
            rules += 1
        chain = item.get("chain")
        if isinstance(chain, dict) and chain.get("hook") and chain.get("policy") == "drop":
            drops = True
    return rules, drops, ""


def parse_iptables(text: str, truncated: bool = False) -> tuple[int, bool, str]:
    """`iptables-save` or `iptables -S` -> (count of -A rules, a built-in chain's policy is DROP,
    error). Empty output is a valid answer: no tables loaded."""
    rules = 0
    drops = False
    recognised = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-A "):
            rules += 1
        elif line.startswith("-P ") or line.startswith(":"):
            # "-P INPUT DROP" (iptables -S) or ":INPUT DROP [0:0]" (iptables-save)
            words = line.split() if line.startswith("-P ") else ["-P", *line[1:].split()]
            drops = drops or (len(words) > 2 and words[2] == "DROP")
        elif not (line.startswith("*") or line == "COMMIT" or line.startswith("-N ")):
            continue  # unknown line: tolerated, but it does not count as recognised
        recognised += 1
    if truncated:
        return rules, drops, f"output truncated; at least {rules} rules"
    if text.strip() and not recognised:
        return 0, False, "unrecognised output"
    return rules, drops, ""


_UFW_STATUS = re.compile(r"^Status:\s*(\w+)", re.MULTILINE)


def parse_ufw_status(text: str) -> tuple[bool, int, str]:
    """`ufw status [verbose]` -> (active, rule count, error)."""
    m = _UFW_STATUS.search(text)
    if not m:
        return False, 0, "unrecognised output (no 'Status:' line)"
    active = m.group(1).lower() == "active"
    rules = 0
    in_table = False
    for line in text.splitlines():
        if re.fullmatch(r"\s*-+(\s+-+)+\s*", line):  # the "--  ------  ----" rule under the header
            in_table = True
            continue
        if in_table and line.strip():
            rules += 1
    return active, rules, ""


def parse_firewalld_state(text: str) -> tuple[bool, str]:
    word = text.strip().lower()
    if word == "running":
        return True, ""
    if word == "not running":
        return False, ""
    return False, "unrecognised output"
