"""Version ordering against each tool's own documented semantics and test suites.

Sources of the tables (tests/fixtures/packages/README.md has the details):
- rpm: rpm's tests/rpmvercmp.at (rpm-software-management/rpm, commit 7f3fdf68, the version
  with the caret cases), every RPMVERCMP(a, b, result) line.
- pacman: pacman's test/util/vercmptest.sh (the 2009-2022 copy in ufolinux/kepler; the same
  cases as upstream pacman), every `runtest a b result` line.
- apk: apk-tools' test/unit/version.data, a subset in tests/fixtures/packages/apk_version.data.
- dpkg: the examples of deb-version(7), plus a cross-check against the real
  `dpkg --compare-versions` on this machine (a few hundred pairs, many built from the
  versions installed here).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warden.agent.versions import SCHEMES, compare_versions, rpmvercmp

FIXTURES = Path(__file__).parent / "fixtures" / "packages"

# rpm tests/rpmvercmp.at, in file order: (a, b, rpm.vercmp(a, b)).
RPMVERCMP_AT = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    # RhBug:178798
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    # tilde
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    # caret
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    # tilde and caret
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
]

# pacman test/util/vercmptest.sh: (a, b, vercmp(a, b)); the script also checks each mirrored.
PACMAN_VERCMPTEST = [
    ("1.5.0", "1.5.0", 0),
    ("1.5.1", "1.5.0", 1),
    ("1.5.1", "1.5", 1),
    ("1.5.0-1", "1.5.0-1", 0),
    ("1.5.0-1", "1.5.0-2", -1),
    ("1.5.0-1", "1.5.1-1", -1),
    ("1.5.0-2", "1.5.1-1", -1),
    ("1.5-1", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-2", -1),
    ("1.5", "1.5-1", 0),
    ("1.5-1", "1.5", 0),
    ("1.1-1", "1.1", 0),
    ("1.0-1", "1.1", -1),
    ("1.1-1", "1.0", 1),
    ("1.5b-1", "1.5-1", -1),
    ("1.5b", "1.5", -1),
    ("1.5b-1", "1.5", -1),
    ("1.5b", "1.5.1", -1),
    ("1.0a", "1.0alpha", -1),
    ("1.0alpha", "1.0b", -1),
    ("1.0b", "1.0beta", -1),
    ("1.0beta", "1.0rc", -1),
    ("1.0rc", "1.0", -1),
    ("1.5.a", "1.5", 1),
    ("1.5.b", "1.5.a", 1),
    ("1.5.1", "1.5.b", 1),
    ("1.5.b-1", "1.5.b", 0),
    ("1.5-1", "1.5.b", -1),
    ("2.0", "2_0", 0),
    ("2.0_a", "2_0.a", 0),
    ("2.0a", "2.0.a", -1),
    ("2___a", "2_a", 1),
    ("0:1.0", "0:1.0", 0),
    ("0:1.0", "0:1.1", -1),
    ("1:1.0", "0:1.0", 1),
    ("1:1.0", "0:1.1", 1),
    ("1:1.0", "2:1.1", -1),
    ("1:1.0", "0:1.0-1", 1),
    ("1:1.0-1", "0:1.1-1", 1),
    ("0:1.0", "1.0", 0),
    ("0:1.0", "1.1", -1),
    ("0:1.1", "1.0", 1),
    ("1:1.0", "1.0", 1),
    ("1:1.0", "1.1", 1),
    ("1:1.1", "1.1", 1),
]

# deb-version(7): "~~, ~~a, ~, the empty part, a" are in order; an absent revision is "0";
# the epoch outranks everything.
DEB_VERSION_7 = [
    ("1.0~~", "1.0~~a", -1),
    ("1.0~~a", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0", "1.0-0", 0),
    ("1:0.1", "2.0", 1),
    ("0:1.0", "1.0", 0),
    ("1.0-1", "1.0-1~bpo1", 1),
    ("2.30-1", "2.3-1", 1),
    ("1.0+b1", "1.0", 1),
    ("1.0.0", "1.0", 1),
    ("7.0", "7.0.0~rc1", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), RPMVERCMP_AT)
def test_rpmvercmp_matches_rpm_test_suite(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert compare_versions(a, b, "rpm") == expected  # no epoch or release: the same comparison


def test_rpm_epoch_version_release() -> None:
    rpm = lambda a, b: compare_versions(a, b, "rpm")  # noqa: E731
    assert rpm("1:1.0-1", "2.0-1") == 1  # epoch first
    assert rpm("0:1.0-1", "1.0-1") == 0  # a missing epoch is 0
    assert rpm("1.0-1.el9", "1.0-1.el9_3") == -1
    assert rpm("1.0", "1.0-1") == -1  # rpmverCmp: no release sorts before any release
    assert rpm("3.0.7-27.el9", "3.0.7-24.el9_5") == 1
    assert rpm("5.14.0-427.24.1.el9_4", "5.14.0-427.el9") == 1
    assert rpm("1:3.0.7-27.el9", "1:3.0.7-27.el9") == 0
    assert rpm("2.0-1-2", "2.0-1-1") == 1  # release is after the last dash


@pytest.mark.parametrize(("a", "b", "expected"), PACMAN_VERCMPTEST)
def test_pacman_matches_vercmptest(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b, "pacman") == expected
    assert compare_versions(b, a, "pacman") == -expected


def _apk_cases() -> list[tuple[str, str, int]]:
    out = []
    for line in (FIXTURES / "apk_version.data").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            a, op, b = line.split()
            out.append((a, b, {"<": -1, "=": 0, ">": 1}[op]))
    return out


@pytest.mark.parametrize(("a", "b", "expected"), _apk_cases())
def test_apk_matches_apk_tools_test_data(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b, "apk") == expected
    assert compare_versions(b, a, "apk") == -expected


@pytest.mark.parametrize(("a", "b", "expected"), DEB_VERSION_7)
def test_dpkg_documented_examples(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b, "dpkg") == expected
    assert compare_versions(b, a, "dpkg") == -expected


def test_unknown_scheme_and_invalid_dpkg_version() -> None:
    assert set(SCHEMES) == {"dpkg", "rpm", "apk", "pacman"}
    with pytest.raises(ValueError, match="unknown version scheme"):
        compare_versions("1", "2", "msi")
    with pytest.raises(ValueError):
        compare_versions("", "1.0", "dpkg")
    # The other schemes order any string, as their tools do (never raise).
    for scheme in ("rpm", "apk", "pacman"):
        assert compare_versions("", "1.0", scheme) in (-1, 0, 1)
        assert compare_versions("\x00garbage", "é~^", scheme) in (-1, 0, 1)


def test_module_imports_nothing_heavy() -> None:
    code = (
        "import sys; import warden.agent.versions as v; "
        "v.compare_versions('1.0', '1.1', 'rpm'); "
        "bad = [m for m in ('debian', 'grpc', 'google.protobuf', 'psutil') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- dpkg cross-check against the real tool ----------------------------------------------------------

DPKG = shutil.which("dpkg")


def _installed_versions() -> list[str]:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}\n"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({v for v in out.split() if v})


def _dpkg_says(a: str, b: str) -> int:
    if subprocess.run([DPKG, "--compare-versions", a, "lt", b]).returncode == 0:  # type: ignore[list-item]
        return -1
    if subprocess.run([DPKG, "--compare-versions", a, "eq", b]).returncode == 0:  # type: ignore[list-item]
        return 0
    return 1


@pytest.mark.skipif(DPKG is None, reason="dpkg not installed")
def test_dpkg_ordering_matches_real_dpkg_compare_versions() -> None:
    rng = random.Random(20240601)
    installed = _installed_versions()
    assert len(installed) > 50
    tricky = [
        "1.0~rc1",
        "1.0~rc1-1",
        "1.0",
        "1.0-0",
        "1.0-1",
        "1:1.0",
        "1.0+dfsg",
        "1.0.0",
        "1.0a",
        "1.0~",
        "1.0~~",
        "1.0~~a",
        "2.0-1~bpo12+1",
        "2.0-1+deb12u1",
        "2.0-1",
        "10",
        "9",
        "1.2.3-4ubuntu0.1",
        "1.2.3-4ubuntu1",
        "0.0",
        "0",
        "1:0",
        "1.0-1.1",
        "1.0-1a",
        "1.0-a1",
        "3.0.19-1~deb12u2",
        "3.0.22-1~deb12u2",
        "252.38-1~deb12u1",
        "20230311+deb12u1",
        "20250419~deb12u2",
    ]
    pairs = [(a, b) for a in tricky for b in tricky][::3]  # ~300 of the 900 combinations
    pairs += [tuple(rng.sample(installed, 2)) for _ in range(200)]
    # Neighbours in sorted order often differ only in a revision or a tilde suffix.
    pairs += [(installed[i], installed[i + 1]) for i in rng.sample(range(len(installed) - 1), 60)]
    mismatches = [(a, b) for a, b in pairs if compare_versions(a, b, "dpkg") != _dpkg_says(a, b)]
    assert len(pairs) >= 500
    assert mismatches == []
