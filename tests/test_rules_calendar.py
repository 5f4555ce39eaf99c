"""Working-hours calendars: boundaries, weekends, holidays, time zones and DST days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from warden.collector.rules.calendar import DEFAULT_CALENDARS, Calendar, parse_calendar
from warden.collector.rules.spec import RuleError, Spec, load_yaml

WH = DEFAULT_CALENDARS["working_hours"]
EVERY_DAY = frozenset(range(7))


def ns(iso: str) -> int:
    """Unix ns of an ISO time written in UTC ("2024-03-04T09:00:00")."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def cal(text: str, name: str = "office") -> Calendar:
    doc = load_yaml(text, "cal.yml")
    return parse_calendar(Spec(doc, "cal.yml", f"calendar {name}"), name)


def cal_error(text: str) -> str:
    with pytest.raises(RuleError) as exc:
        cal(text)
    return str(exc.value)


# --- the default calendar ----------------------------------------------------------------------


def test_default_is_weekdays_nine_to_six_in_the_host_zone() -> None:
    expected = Calendar("working_hours", "host", frozenset(range(5)), ((9 * 3600, 18 * 3600),), frozenset())
    assert expected == WH


@pytest.mark.parametrize(("iso", "working"), [
    ("2024-03-04T08:59:59", False),  # Monday
    ("2024-03-04T09:00:00", True),
    ("2024-03-04T17:59:59", True),
    ("2024-03-04T18:00:00", False),
    ("2024-03-08T12:00:00", True),   # Friday
    ("2024-03-09T12:00:00", False),  # Saturday
    ("2024-03-10T12:00:00", False),  # Sunday
    ("2024-03-04T00:00:00", False),
])
def test_default_boundaries_in_utc(iso: str, working: bool) -> None:
    assert WH.is_working(ns(iso), "") is working


def test_sub_second_times_are_inside_the_second_they_belong_to() -> None:
    assert WH.is_working(ns("2024-03-04T08:59:59") + 999_999_999, "") is False
    assert WH.is_working(ns("2024-03-04T17:59:59") + 999_999_999, "") is True


def test_empty_or_unknown_host_zone_means_utc() -> None:
    t = ns("2024-03-04T08:30:00")  # 09:30 in Paris, 08:30 UTC
    assert WH.is_working(t, "Europe/Paris") is True
    assert WH.is_working(t, "") is False
    assert WH.is_working(t, "Mars/Olympus_Mons") is False
    assert WH.is_working(t, "../../etc/passwd") is False


def test_time_out_of_range_is_not_working_and_does_not_raise() -> None:
    assert WH.is_working(10**30, "Europe/Paris") is False
    assert WH.is_working(-(10**30), "") is False


# --- time zones and DST ------------------------------------------------------------------------


@pytest.mark.parametrize(("iso", "working"), [
    # winter Monday (CET, UTC+1): 09:00 local = 08:00 UTC
    ("2024-03-25T07:59:59", False),
    ("2024-03-25T08:00:00", True),
    ("2024-03-25T16:59:59", True),
    ("2024-03-25T17:00:00", False),
    # the Monday after the spring change (CEST, UTC+2): 09:00 local = 07:00 UTC
    ("2024-04-01T06:59:59", False),
    ("2024-04-01T07:00:00", True),
    ("2024-04-01T15:59:59", True),
    ("2024-04-01T16:00:00", False),
])
def test_host_zone_paris_follows_dst(iso: str, working: bool) -> None:
    assert WH.is_working(ns(iso), "Europe/Paris") is working


@pytest.mark.parametrize(("zone", "iso", "working"), [
    # Paris, 2024-03-31: 02:00 CET -> 03:00 CEST, so 09:00 local is 07:00 UTC that day
    ("Europe/Paris", "2024-03-31T06:59:59", False),
    ("Europe/Paris", "2024-03-31T07:00:00", True),
    ("Europe/Paris", "2024-03-31T15:59:59", True),
    ("Europe/Paris", "2024-03-31T16:00:00", False),
    # Paris, 2024-10-27: 03:00 CEST -> 02:00 CET, so 09:00 local is 08:00 UTC that day
    ("Europe/Paris", "2024-10-27T07:59:59", False),
    ("Europe/Paris", "2024-10-27T08:00:00", True),
    ("Europe/Paris", "2024-10-27T16:59:59", True),
    ("Europe/Paris", "2024-10-27T17:00:00", False),
    # New York, 2024-03-10: 02:00 EST -> 03:00 EDT (UTC-4): 09:00 local = 13:00 UTC
    ("America/New_York", "2024-03-10T12:59:59", False),
    ("America/New_York", "2024-03-10T13:00:00", True),
    ("America/New_York", "2024-03-10T21:59:59", True),
    ("America/New_York", "2024-03-10T22:00:00", False),
    # New York, 2024-11-03: 02:00 EDT -> 01:00 EST (UTC-5): 09:00 local = 14:00 UTC
    ("America/New_York", "2024-11-03T13:59:59", False),
    ("America/New_York", "2024-11-03T14:00:00", True),
    ("America/New_York", "2024-11-03T22:59:59", True),
    ("America/New_York", "2024-11-03T23:00:00", False),
])
def test_dst_transition_days(zone: str, iso: str, working: bool) -> None:
    every_day = Calendar("all_week", days=EVERY_DAY)
    assert every_day.is_working(ns(iso), zone) is working  # zone from the host
    fixed = Calendar("fixed", timezone=zone, days=EVERY_DAY)
    assert fixed.is_working(ns(iso), "Asia/Tokyo") is working  # own zone: the host's is ignored


def test_repeated_and_skipped_local_hours() -> None:
    night = Calendar("night", timezone="Europe/Paris", days=EVERY_DAY, hours=((2 * 3600, 3 * 3600),))
    # 2024-10-27: 02:00-03:00 local happens twice (CEST, then CET): both are inside
    assert night.is_working(ns("2024-10-27T00:30:00"), "") is True   # 02:30 CEST
    assert night.is_working(ns("2024-10-27T01:30:00"), "") is True   # 02:30 CET
    assert night.is_working(ns("2024-10-27T02:00:00"), "") is False  # 03:00 CET
    # 2024-03-31: 02:00-03:00 local does not exist
    assert night.is_working(ns("2024-03-31T00:59:59"), "") is False  # 01:59:59 CET
    assert night.is_working(ns("2024-03-31T01:00:00"), "") is False  # 03:00:00 CEST


def test_holidays_are_local_dates_in_the_calendars_zone() -> None:
    # Kiritimati is UTC+14: 2024-12-24T19:00Z is 09:00 on the 25th there
    t = ns("2024-12-24T19:00:00")
    base = Calendar("k", timezone="Pacific/Kiritimati")
    assert base.is_working(t, "") is True
    assert Calendar("k", timezone="Pacific/Kiritimati", holidays=frozenset({date(2024, 12, 25)})) \
        .is_working(t, "") is False
    assert Calendar("k", timezone="Pacific/Kiritimati", holidays=frozenset({date(2024, 12, 24)})) \
        .is_working(t, "") is True


def test_holiday_in_the_host_zone() -> None:
    xmas = Calendar("c", holidays=frozenset({date(2024, 12, 25)}))
    assert xmas.is_working(ns("2024-12-25T10:00:00"), "Europe/Paris") is False  # a Wednesday
    assert xmas.is_working(ns("2024-12-24T10:00:00"), "Europe/Paris") is True
    assert xmas.is_working(ns("2024-12-26T10:00:00"), "Europe/Paris") is True


def test_several_ranges() -> None:
    c = cal('{hours: ["08:00-12:00", "13:00-17:00"], timezone: UTC}')
    times = ("07:59:59", "08:00:00", "11:59:59", "12:00:00", "12:59:59", "13:00:00", "16:59:59", "17:00:00")
    assert [c.is_working(ns(f"2024-03-04T{h}"), "") for h in times] \
        == [False, True, True, False, False, True, True, False]


def test_end_of_day_24_00_and_night_shift_as_two_ranges() -> None:
    c = cal('{days: [mon-sun], hours: ["22:00-24:00", "00:00-06:00"]}')
    assert c.is_working(ns("2024-03-04T23:59:59"), "") is True
    assert c.is_working(ns("2024-03-05T00:00:00"), "") is True
    assert c.is_working(ns("2024-03-05T05:59:59"), "") is True
    assert c.is_working(ns("2024-03-05T06:00:00"), "") is False
    assert c.is_working(ns("2024-03-04T21:59:59"), "") is False


# --- parsing -----------------------------------------------------------------------------------


def test_parse_full_calendar() -> None:
    c = cal("""
timezone: Europe/Paris
days: [mon-wed, fri]
hours: "08:30-19:00"
holidays: [2025-12-25, "2026-01-01"]
""")
    assert c == Calendar("office", "Europe/Paris", frozenset({0, 1, 2, 4}), ((8 * 3600 + 1800, 19 * 3600),),
                         frozenset({date(2025, 12, 25), date(2026, 1, 1)}))


def test_parse_defaults_and_single_strings() -> None:
    assert cal("{}") == Calendar("office")
    assert cal("{days: sat}").days == frozenset({5})
    assert cal("{days: mon-fri}").days == frozenset(range(5))
    assert cal("{hours: '7:00-9:00'}").hours == ((7 * 3600, 9 * 3600),)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("days: [mon]\nhours: '22:00-06:00'\n", 2,
     "wraps midnight: write it as two ranges, 22:00-24:00 and 00:00-06:00"),
    ("hours: '09:00-09:00'\n", 1, "is empty"),
    ("hours: '09:00-25:00'\n", 1, "00:00 to 24:00"),
    ("hours: '24:00-24:30'\n", 1, "00:00 to 24:00"),
    ("hours: '9h-18h'\n", 1, "not a range of hours"),
    ("hours: []\n", 1, "non-empty list"),
    ("\ntimezone: Europe/Pariss\n", 2, "unknown time zone 'Europe/Pariss'"),
    ("timezone: ''\n", 1, "must not be empty"),
    ("days: [mon, fry]\n", 1, "'fry' is not a day"),
    ("days: [fri-mon]\n", 1, "runs backwards"),
    ("days: []\n", 1, "at least one day"),
    ("days: [mon]\nholidays: ['2025-13-01']\n", 2, "not a date"),
    ("holidays: [2025-12-25 10:00:00]\n", 1, "a holiday is a date"),
    ("holidays: 2025-12-25\n", 1, "list of dates"),
    ("days: [mon]\nhourz: '09:00-10:00'\n", 2, "unknown field 'hourz' (did you mean 'hours'?)"),
])
def test_parse_errors_have_the_fields_line(text: str, line: int, words: str) -> None:
    msg = cal_error(text)
    assert msg.startswith(f"cal.yml:{line}: calendar office"), msg
    assert words in msg, msg
