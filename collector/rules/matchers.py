"""Value matchers shared by every rule kind: label matchers (metric rules, scopes) and
event field matchers.

A matcher is written as a plain value (equality) or a one-key mapping naming the test:

    user: root                       # equals
    service: {in: [sshd, login]}
    raw: {contains: "Accepted"}
    tty: {startswith: pts/}
    user: {regex: "adm.*"}           # full match, checked for catastrophic backtracking
    src_ip: {cidr: [10.0.0.0/8, 192.168.0.0/16]}
    pam_module: {exists: false}
    count: {gte: 3}                  # gt, gte, lt, lte on numbers
    user: {not: {in: [backup, nagios]}}

Regexes are refused when they could backtrack catastrophically (a repeat inside a repeat,
or alternatives inside a repeat that can match the same text), since field values come
from hosts, and hosts can be hostile.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

try:  # Python 3.11+: the regex parser moved to re._parser
    from re import _constants as _sre_c  # type: ignore[attr-defined]
    from re import _parser as _sre_p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_p  # type: ignore[no-redef]

from warden.collector.rules.spec import RuleError, Spec

Test = Callable[[Any], bool]
MAX_REGEX_LENGTH = 1000

_OPS = ("equals", "not_equals", "in", "not_in", "contains", "startswith", "endswith", "regex",
        "cidr", "exists", "gt", "gte", "lt", "lte", "not")


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def check_regex(pattern: str) -> re.Pattern[str]:
    """Compile `pattern` or raise ValueError saying why it is refused."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"regex longer than {MAX_REGEX_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
        parsed = _sre_p.parse(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
    problem = _backtracking(parsed)
    if problem:
        raise ValueError(f"regex {pattern!r} could backtrack catastrophically ({problem}); "
                         f"rewrite it without nesting repeats, or make the inner repeat possessive "
                         f"(\\d++, [a-z]*+) or atomic ((?>...)))")
    return compiled


# Possessive repeats and atomic groups (3.11+) never backtrack, so they are not checked.
_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT}


def _backtracking(parsed: Any) -> str | None:
    for op, av in parsed:
        if op in _REPEATS:
            _, hi, body = av
            if hi > 1 and _unbounded_inside(body):
                return "a repeat nested in a repeat"
            if (hi == _sre_c.MAXREPEAT or hi > 100) and _ambiguous_branch(body):
                return "alternatives that can match the same text inside a repeat"
            if problem := _backtracking(body):
                return problem
        elif op is _sre_c.SUBPATTERN:
            if problem := _backtracking(av[-1]):
                return problem
        elif op is _sre_c.BRANCH:
            for alt in av[1]:
                if problem := _backtracking(alt):
                    return problem
        elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT) and (problem := _backtracking(av[1])):
            return problem
    return None


def _unbounded_inside(body: Any) -> bool:
    """Does this repeated body itself contain a repeat of many (variable) lengths?"""
    for op, av in body:
        if op in _REPEATS and (av[1] == _sre_c.MAXREPEAT or av[1] > 100 or _unbounded_inside(av[2])):
            return True
        if op is _sre_c.SUBPATTERN and _unbounded_inside(av[-1]):
            return True
        if op is _sre_c.BRANCH and any(_unbounded_inside(a) for a in av[1]):
            return True
    return False


def _ambiguous_branch(body: Any) -> bool:
    """Alternatives under a repeat whose first characters overlap, e.g. (a|a)* or (a|ab)*."""
    for op, av in body:
        if op is _sre_c.SUBPATTERN:
            if _ambiguous_branch(av[-1]):
                return True
        elif op is _sre_c.BRANCH:
            firsts: list[set[Any] | None] = [_first_literals(a) for a in av[1]]
            for i, a in enumerate(firsts):
                for b in firsts[i + 1:]:
                    if a is None or b is None or a & b:
                        return True
    return False


def _first_literals(alt: Any) -> set[Any] | None:
    """The literal first characters of an alternative, or None if it can start with anything."""
    if not alt:
        return None
    op, av = alt[0]
    if op is _sre_c.LITERAL:
        return {av}
    if op is _sre_c.IN and all(o is _sre_c.LITERAL for o, _ in av):
        return {v for _, v in av}
    return None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One test on one value; `describe` is how it was written (for messages)."""

    test: Test
    describe: str
    needs_value: bool = True  # False for exists: false / not-matchers that accept absence

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def parse_matcher(raw: Any, where: Spec, key: str) -> Matcher:
    """A matcher from its YAML form; errors point at `where`'s line for `key`."""
    if isinstance(raw, dict):
        if len(raw) != 1:
            raise where.error(f"{where.what}.{key}: a matcher has exactly one test "
                              f"(one of {', '.join(_OPS)}), got {sorted(raw)}", key)
        (op, arg), = raw.items()
        if op not in _OPS:
            raise where.error(f"{where.what}.{key}: unknown matcher {op!r} (one of {', '.join(_OPS)})", key)
        try:
            return _build(op, arg, where, key)
        except ValueError as exc:
            raise where.error(f"{where.what}.{key}: {exc}", key) from None
    if isinstance(raw, list):
        raise where.error(f"{where.what}.{key}: a list needs a test, e.g. {{in: [...]}}", key)
    if raw is None:
        raise where.error(f"{where.what}.{key}: a value is required (use {{exists: false}} for absence)", key)
    want = _text(raw)
    return Matcher(lambda v: v is not None and _text(v) == want, f"{key} == {want!r}")


def _build(op: str, arg: Any, where: Spec, key: str) -> Matcher:
    if op == "not":
        inner = parse_matcher(arg, where, key)
        return Matcher(lambda v: not inner(v), f"not ({inner.describe})", needs_value=False)
    if op == "exists":
        if not isinstance(arg, bool):
            raise ValueError("exists takes true or false")
        return Matcher((lambda v: v is not None) if arg else (lambda v: v is None),
                       f"{key} exists: {arg}", needs_value=arg)
    if op in ("equals", "not_equals"):
        if isinstance(arg, dict | list) or arg is None:
            raise ValueError(f"{op} takes one value")
        want = _text(arg)
        if op == "equals":
            return Matcher(lambda v: v is not None and _text(v) == want, f"{key} == {want!r}")
        return Matcher(lambda v: v is None or _text(v) != want, f"{key} != {want!r}", needs_value=False)
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg or any(isinstance(a, dict | list) for a in arg):
            raise ValueError(f"{op} takes a non-empty list of values")
        options = frozenset(_text(a) for a in arg)
        if op == "in":
            return Matcher(lambda v: v is not None and _text(v) in options, f"{key} in {sorted(options)}")
        return Matcher(lambda v: v is None or _text(v) not in options, f"{key} not in {sorted(options)}",
                       needs_value=False)
    if op in ("contains", "startswith", "endswith"):
        if not isinstance(arg, str | list):
            raise ValueError(f"{op} takes a string or a list of strings")
        needles = tuple(arg) if isinstance(arg, list) else (arg,)
        if not all(isinstance(n, str) and n for n in needles):
            raise ValueError(f"{op} takes non-empty strings")
        if op == "contains":
            return Matcher(lambda v: v is not None and any(n in _text(v) for n in needles),
                           f"{key} contains {list(needles)}")
        if op == "startswith":
            return Matcher(lambda v: v is not None and _text(v).startswith(needles),
                           f"{key} startswith {list(needles)}")
        return Matcher(lambda v: v is not None and _text(v).endswith(needles),
                       f"{key} endswith {list(needles)}")
    if op == "regex":
        if not isinstance(arg, str):
            raise ValueError("regex takes a string")
        rx = check_regex(arg)
        return Matcher(lambda v: v is not None and rx.fullmatch(_text(v)) is not None, f"{key} =~ {arg!r}")
    if op == "cidr":
        nets_raw = arg if isinstance(arg, list) else [arg]
        try:
            nets = tuple(ipaddress.ip_network(str(n), strict=False) for n in nets_raw)
        except ValueError as exc:
            raise ValueError(f"cidr: {exc}") from None
        return Matcher(lambda v: _in_networks(v, nets), f"{key} in {[str(n) for n in nets]}")
    # gt, gte, lt, lte
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise ValueError(f"{op} takes a number")
    bound = float(arg)
    cmp = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
    return Matcher(lambda v: _number(v) is not None and cmp(_number(v), bound), f"{key} {op} {arg}")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _in_networks(v: Any, nets: tuple[Any, ...]) -> bool:
    if v is None:
        return False
    try:
        addr = ipaddress.ip_address(_text(v).split("%", 1)[0])
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in nets)


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """All of several named matchers (an AND); an empty FieldMatch matches everything."""

    matchers: tuple[tuple[str, Matcher], ...]

    def __call__(self, values: Mapping[str, Any]) -> bool:
        for name, m in self.matchers:  # noqa: SIM110 - a plain loop: this is the engine's hot path
            if not m.test(values.get(name)):
                return False
        return True

    def __bool__(self) -> bool:
        return bool(self.matchers)


def parse_field_match(spec: Spec | None) -> FieldMatch:
    """`{name: matcher, ...}` (all must hold)."""
    if spec is None:
        return FieldMatch(())
    out = []
    for key in list(spec.data):
        out.append((key, parse_matcher(spec.raw(key), spec, key)))
    spec.done()
    return FieldMatch(tuple(out))


def field_match_from(spec: Spec, key: str) -> FieldMatch:
    return parse_field_match(spec.sub(key, None))


__all__ = ["FieldMatch", "Matcher", "RuleError", "check_regex", "field_match_from", "parse_field_match",
           "parse_matcher"]
