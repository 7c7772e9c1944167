"""The budget decision: pure, so every edge is checked here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.repositories.usage import Used
from app.services.budgets import Exceeded, check_budget, exceeded_detail, windows

NOW = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)


def test_windows_are_the_utc_day_and_month() -> None:
    window = windows(NOW)
    assert window.day_start == datetime(2026, 12, 31, tzinfo=UTC)
    assert window.day_end == datetime(2027, 1, 1, tzinfo=UTC)
    assert window.month_start == datetime(2026, 12, 1, tzinfo=UTC)
    assert window.month_end == datetime(2027, 1, 1, tzinfo=UTC)
    february = windows(datetime(2028, 2, 29, 0, 0, tzinfo=UTC))
    assert (february.day_end, february.month_end) == (
        datetime(2028, 3, 1, tzinfo=UTC),
        datetime(2028, 3, 1, tzinfo=UTC),
    )


def test_no_limits_admit_anything() -> None:
    assert check_budget({}, Used(10**6, 10**9, 1e6, 1e7), NOW) is None


@pytest.mark.parametrize(
    ("limits", "used", "expected"),
    [
        ({"turns_per_day": 3}, Used(turns_today=2), None),
        ({"turns_per_day": 3}, Used(turns_today=3), ("turns_per_day", 3, 3)),
        ({"turns_per_day": 0}, Used(), ("turns_per_day", 0, 0)),
        ({"output_tokens_per_day": 100}, Used(output_tokens_today=99), None),
        (
            {"output_tokens_per_day": 100},
            Used(output_tokens_today=250),
            ("output_tokens_per_day", 100, 250),
        ),
        ({"cost_usd_per_day": 1.5}, Used(cost_usd_today=1.49), None),
        ({"cost_usd_per_day": 1.5}, Used(cost_usd_today=1.5), ("cost_usd_per_day", 1.5, 1.5)),
        ({"cost_usd_per_month": 10}, Used(cost_usd_today=1, cost_usd_month=9.99), None),
        ({"cost_usd_per_month": 10}, Used(cost_usd_month=12), ("cost_usd_per_month", 10, 12)),
    ],
)
def test_a_prompt_needs_something_left_of_each_limit(
    limits: dict[str, float], used: Used, expected: tuple[str, float, float] | None
) -> None:
    exceeded = check_budget(limits, used, NOW)
    if expected is None:
        assert exceeded is None
    else:
        assert exceeded is not None
        assert (exceeded.limit, exceeded.amount, exceeded.used) == expected


def test_a_day_limit_resets_at_midnight_utc_and_a_month_limit_at_the_month_end() -> None:
    day = check_budget({"turns_per_day": 1}, Used(turns_today=1), NOW)
    month = check_budget({"cost_usd_per_month": 1}, Used(cost_usd_month=2), NOW)
    assert day is not None and month is not None
    assert day.retry_after(NOW) == 90 * 60
    assert month.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    mid_month = datetime(2026, 11, 15, tzinfo=UTC)
    later = check_budget({"cost_usd_per_month": 1}, Used(cost_usd_month=2), mid_month)
    assert later is not None and later.retry_after(mid_month) == 16 * 86_400


def test_retry_after_is_at_least_a_second() -> None:
    exceeded = Exceeded("turns_per_day", 1, 1, NOW)
    assert exceeded.retry_after(NOW) == 1


def test_the_first_limit_reached_is_named_with_what_was_used() -> None:
    limits = {"turns_per_day": 5, "cost_usd_per_day": 2.0}
    exceeded = check_budget(limits, Used(turns_today=1, cost_usd_today=2.25), NOW)
    assert exceeded is not None
    detail = exceeded_detail(exceeded)
    assert "cost_usd_per_day limit is 2" in detail and "came to 2.25" in detail
    assert "2027-01-01T00:00:00+00:00" in detail
