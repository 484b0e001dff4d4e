"""Which window a report covers: a day, the 7 days or the 30 days ending on a given day (policy's time zone).

Trailing windows rather than calendar weeks and months, so that "the previous period" always has the same
length and the change against it compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
PERIOD_DAYS: dict[str, int] = {"day": 1, "week": 7, "month": 30}
TITLES = {"day": "调度日报", "week": "形势周报", "month": "月报"}
PREVIOUS_NAMES = {"day": "前一日", "week": "前一周", "month": "前30日"}
#: Report dates outside these bounds are refused (no store holds cases from before; none will after).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class PeriodError(ValueError):
    """A period or date a report cannot be made for; the message says what is wrong and what is accepted."""


@dataclass(frozen=True)
class ReportWindow:
    period: Period
    #: The last day the report covers (local date).
    day: date
    days: tuple[date, ...]
    previous_days: tuple[date, ...]
    zone: tzinfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.days[0], time.min, tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), time.min, tzinfo=self.zone)

    @property
    def previous_start(self) -> datetime:
        return datetime.combine(self.previous_days[0], time.min, tzinfo=self.zone)

    @property
    def title(self) -> str:
        return TITLES[self.period]

    @property
    def label(self) -> str:
        """The covered days as a reader writes them: 2026年12月6日, or 2026年11月30日—12月6日."""
        first, last = self.days[0], self.days[-1]
        if first == last:
            return f"{last.year}年{last.month}月{last.day}日"
        tail = f"{last.month}月{last.day}日" if first.year == last.year else f"{last.year}年{last.month}月{last.day}日"
        return f"{first.year}年{first.month}月{first.day}日—{tail}"


def parse_period(value: str) -> Period:
    if value not in PERIODS:
        raise PeriodError(f"period {value!r}: use one of {', '.join(PERIODS)}")
    return value  # type: ignore[return-value]


def parse_day(value: str | date | None, zone: tzinfo, now: datetime | None = None) -> date:
    """A report's last day: YYYY-MM-DD, or today in `zone` when not given."""
    if value is None or value == "":
        return (now or datetime.now(zone)).astimezone(zone).date()
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise PeriodError(f"date {value!r}: not a date; use YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise PeriodError(f"date {day.isoformat()}: use a date from {FIRST_DAY} to {LAST_DAY}")
    return day


def report_window(period: str, day: date, zone: tzinfo) -> ReportWindow:
    """The window of `period` ending on `day` (inclusive) and the one of the same length before it."""
    length = PERIOD_DAYS[parse_period(period)]
    days = tuple(day - timedelta(days=length - 1 - i) for i in range(length))
    previous = tuple(d - timedelta(days=length) for d in days)
    return ReportWindow(parse_period(period), day, days, previous, zone)
