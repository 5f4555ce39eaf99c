"""Package version ordering exactly as each package manager defines it.

`compare_versions(a, b, scheme)` returns -1, 0 or 1 (a older, equal, newer) for:

- "dpkg": Debian's ordering (deb-version(7): epoch, upstream, revision, `~` before anything),
  delegated to python-debian, imported on first use.
- "rpm": rpm's `rpmvercmp` (rpmio/rpmvercmp.c, rpm >= 4.15 with `~` and `^`) over
  `[epoch:]version[-release]`, split and combined as rpm's `rpmverCmp` does.
- "apk": apk-tools' version rules (src/version.c: digits, one letter, `_alpha` `_beta`
  `_pre` `_rc` / `_cvs` `_svn` `_git` `_hg` `_p` suffixes, `~hash`, `-rN`).
- "pacman": libalpm's `alpm_pkg_vercmp` (lib/libalpm/version.c), an older rpmvercmp
  without `~`/`^` but where separator length matters and a trailing letter is a pre-release.

Only the standard library at import: the collector imports this module too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["SCHEMES", "compare_versions", "rpmvercmp"]


def compare_versions(a: str, b: str, scheme: str) -> int:
    """-1 if `a` sorts before `b`, 0 if equal, 1 if after, by `scheme`'s rules.

    Raises ValueError for an unknown scheme, or a dpkg version dpkg could not parse.
    """
    try:
        cmp = _SCHEMES[scheme]
    except KeyError:
        raise ValueError(f"unknown version scheme {scheme!r} (one of {', '.join(SCHEMES)})") from None
    return cmp(a, b)


# --- rpm -------------------------------------------------------------------------------------------


def _isdigit(c: str) -> bool:
    # rpm's risdigit/risalpha are ASCII-only (no locale): a non-ASCII byte is a separator.
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _isalnum(c: str) -> bool:
    return _isdigit(c) or _isalpha(c)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison of one version (or release) string, rpm >= 4.15 semantics."""
    if a == b:
        return 0
    i = j = 0
    na, nb = len(a), len(b)
    while i < na or j < nb:
        while i < na and not _isalnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < nb and not _isalnum(b[j]) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < na else ""
        cb = b[j] if j < nb else ""
        # '~' sorts before everything, even the end of the string ("1.0~rc1" < "1.0").
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        # '^' sorts after the end of the string but before any further segment:
        # "1.0" < "1.0^git1" < "1.0.1".
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        isnum = _isdigit(ca)
        test = _isdigit if isnum else _isalpha
        si, sj = i, j
        while i < na and test(a[i]):
            i += 1
        while j < nb and test(b[j]):
            j += 1
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            # Different segment types: a numeric segment is newer than an alpha one.
            return 1 if isnum else -1
        if isnum:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if i >= na and j >= nb:
        return 0
    # Whichever still has characters left is newer.
    return -1 if i >= na else 1


def _split_evr(evr: str) -> tuple[str | None, str, str | None]:
    """rpm's parseEVR: epoch = leading digits ended by ':', release after the last '-'."""
    k = 0
    while k < len(evr) and _isdigit(evr[k]):
        k += 1
    if k < len(evr) and evr[k] == ":":
        epoch: str | None = evr[:k] or "0"
        rest = evr[k + 1 :]
        dash_from = 0
    else:
        epoch, rest, dash_from = None, evr, k
    # rpm looks for the release dash only after the epoch digits, even without a colon.
    dash = rest.rfind("-", dash_from)
    if dash >= 0:
        return epoch, rest[:dash], rest[dash + 1 :]
    return epoch, rest, None


def _rpm_evr_compare(a: str, b: str) -> int:
    """rpmverCmp: a missing epoch is 0; a missing release sorts before any release."""
    ea, va, ra = _split_evr(a)
    eb, vb, rb = _split_evr(b)
    for x, y in ((ea or "0", eb or "0"), (va, vb)):
        rc = rpmvercmp(x, y)
        if rc:
            return rc
    if ra is None or rb is None:
        return 0 if ra is rb else (1 if rb is None else -1)
    return rpmvercmp(ra, rb)


# --- pacman ----------------------------------------------------------------------------------------


def _alpm_vercmp_part(a: str, b: str) -> int:
    """libalpm's rpmvercmp: no '~'/'^'; the separator run length decides; a trailing alpha
    segment is older than nothing ("1.0a" < "1.0")."""
    if a == b:
        return 0
    i = j = 0
    pi = pj = 0  # end of the previous segment
    na, nb = len(a), len(b)
    while i < na and j < nb:
        while i < na and not _isalnum(a[i]):
            i += 1
        while j < nb and not _isalnum(b[j]):
            j += 1
        if i >= na or j >= nb:
            break
        if i - pi != j - pj:
            return -1 if i - pi < j - pj else 1
        isnum = _isdigit(a[i])
        test = _isdigit if isnum else _isalpha
        si, sj = i, j
        while i < na and test(a[i]):
            i += 1
        while j < nb and test(b[j]):
            j += 1
        pi, pj = i, j
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            return 1 if isnum else -1
        if isnum:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if i >= na and j >= nb:
        return 0
    ra, rb = a[i:i + 1], b[j:j + 1]
    # "We never want a remaining alpha string to beat an empty string."
    if (not ra and not _isalpha(rb)) or (ra and _isalpha(ra)):
        return -1
    return 1


def _alpm_split(evr: str) -> tuple[str, str, str | None]:
    k = 0
    while k < len(evr) and _isdigit(evr[k]):
        k += 1
    dash = evr.rfind("-", k)
    if k < len(evr) and evr[k] == ":":
        epoch, version = evr[:k] or "0", evr[k + 1 : dash if dash >= 0 else len(evr)]
    else:
        epoch, version = "0", evr[: dash if dash >= 0 else len(evr)]  # pacman: no epoch means 0
    return epoch, version, (evr[dash + 1 :] if dash >= 0 else None)


def _pacman_compare(a: str, b: str) -> int:
    if a == b:
        return 0
    ea, va, ra = _alpm_split(a)
    eb, vb, rb = _alpm_split(b)
    rc = _alpm_vercmp_part(ea, eb) or _alpm_vercmp_part(va, vb)
    if rc == 0 and ra is not None and rb is not None:
        rc = _alpm_vercmp_part(ra, rb)  # pkgrel only when both sides have one
    return rc


# --- apk -------------------------------------------------------------------------------------------

# Token kinds in apk's order; a version that ends earlier / differs in kind is decided by it.
_T_INITIAL, _T_DIGIT, _T_LETTER, _T_SUFFIX, _T_SUFFIX_NO, _T_HASH, _T_REVISION, _T_END, _T_INVALID = range(9)
# Pre-release suffixes sort below "no suffix" (5), post-release ones above.
_SUFFIXES = {"alpha": 1, "beta": 2, "pre": 3, "rc": 4, "cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10}
_SUFFIX_NONE = 5
_HEX = frozenset("0123456789abcdefABCDEF")


def _apk_tokens(v: str) -> list[tuple[int, Any]]:
    """apk's token stream: (kind, value), ending with END or INVALID."""
    out: list[tuple[int, Any]] = []
    n, i = len(v), 0

    def digits(kind: int) -> None:
        nonlocal i
        s = i
        while i < n and _isdigit(v[i]):
            i += 1
        out.append((kind, v[s:i]) if i > s else (_T_INVALID, ""))

    digits(_T_INITIAL)
    while out[-1][0] < _T_END:
        prev = out[-1][0]
        if i >= n:
            out.append((_T_END, None))
            break
        c = v[i]
        if "a" <= c <= "z":
            if prev > _T_DIGIT:
                out.append((_T_INVALID, ""))
            else:
                out.append((_T_LETTER, c))
                i += 1
        elif c == "." or _isdigit(c):
            if c == ".":
                if prev > _T_DIGIT:
                    out.append((_T_INVALID, ""))
                    break
                i += 1
            if prev in (_T_INITIAL, _T_DIGIT):
                digits(_T_DIGIT)
            elif prev == _T_SUFFIX:
                digits(_T_SUFFIX_NO)
            else:
                out.append((_T_INVALID, ""))
        elif c == "_":
            i += 1
            s = i
            while i < n and "a" <= v[i] <= "z":
                i += 1
            suffix = _SUFFIXES.get(v[s:i])
            if prev > _T_SUFFIX_NO or suffix is None:
                out.append((_T_INVALID, ""))
            else:
                out.append((_T_SUFFIX, suffix))
        elif c == "~":
            i += 1
            s = i
            while i < n and v[i] in _HEX:
                i += 1
            out.append((_T_HASH, v[s:i]) if prev < _T_HASH and i > s else (_T_INVALID, ""))
        elif c == "-" and prev < _T_REVISION and v.startswith("-r", i):
            i += 2
            digits(_T_REVISION)
        else:
            out.append((_T_INVALID, ""))
    return out


def _apk_token_cmp(kind: int, x: Any, y: Any) -> int:
    if kind == _T_DIGIT and (x[0] == "0" or y[0] == "0"):
        # A leading zero after a dot: plain string order, as Gentoo's rules say ("1.02" < "1.1").
        return (x > y) - (x < y)
    if kind in (_T_INITIAL, _T_DIGIT, _T_SUFFIX_NO, _T_REVISION):
        x, y = int(x), int(y)
    return (x > y) - (x < y)


def _apk_compare(a: str, b: str) -> int:
    ta, tb = _apk_tokens(a), _apk_tokens(b)
    k = 0
    while True:
        (ka, xa), (kb, xb) = ta[k], tb[k]
        if ka != kb or ka >= _T_END:
            break
        rc = _apk_token_cmp(ka, xa, xb)
        if rc:
            return rc
        k += 1
    if ka == kb:
        return 0
    # Equal so far: the longer version is newer unless what follows is a pre-release suffix.
    if ka == _T_SUFFIX and xa < _SUFFIX_NONE:
        return -1
    if kb == _T_SUFFIX and xb < _SUFFIX_NONE:
        return 1
    return -1 if ka > kb else 1


# --- dpkg ------------------------------------------------------------------------------------------


@cache
def _debian_version_class() -> Any:
    # python-debian is an agent dependency; imported lazily so a collector that never
    # compares Debian versions does not pay for it.
    from debian.debian_support import Version

    return Version


def _dpkg_compare(a: str, b: str) -> int:
    version = _debian_version_class()
    va, vb = version(a), version(b)  # ValueError on a version dpkg would reject
    return -1 if va < vb else (1 if va > vb else 0)


_SCHEMES: dict[str, Callable[[str, str], int]] = {
    "dpkg": _dpkg_compare,
    "rpm": _rpm_evr_compare,
    "apk": _apk_compare,
    "pacman": _pacman_compare,
}
SCHEMES: tuple[str, ...] = tuple(_SCHEMES)
