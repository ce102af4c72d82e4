"""The in-memory budget ledger forgets accounts of past periods as Redis expires them (3 days
after a day, 70 after a month), so a long-running process holds a few periods per budgeted
key, not one more every day; an account where a reservation is still held is never dropped;
keys that are not of a day or month (``total``, malformed ids) are never dropped and never
move the ledger's idea of today."""

from __future__ import annotations

from datetime import date, timedelta

from llmrelay.reliability.budgets import BudgetLimit, MemoryLedger


def _day(d: date, who: str = "k1") -> str:
    return f"key|{who}|day|{d.isoformat()}"


def _month(d: date, who: str = "k1") -> str:
    return f"key|{who}|month|{d.isoformat()[:7]}"


def _spend(ledger: MemoryLedger, key: str, usd: float = 1.0) -> None:
    assert ledger.reserve_now([(key, 1e9)], usd) is None
    ledger.settle_now([key], usd, usd)


def _keys(ledger: MemoryLedger) -> set[str]:
    return set(ledger._spent) | set(ledger._reserved)


def test_a_year_of_days_keeps_the_last_few_days_and_months() -> None:
    ledger = MemoryLedger()
    start = date(2026, 1, 1)
    for i in range(365):
        d = start + timedelta(days=i)
        for who in ("k1", "k2"):
            _spend(ledger, _day(d, who))
            _spend(ledger, _month(d, who))
            _spend(ledger, f"key|{who}|total|all")
    last = start + timedelta(days=364)
    days = {k.rsplit("|", 1)[1] for k in _keys(ledger) if "|day|" in k}
    assert days == {(last - timedelta(days=n)).isoformat() for n in range(4)}
    months = {k.rsplit("|", 1)[1] for k in _keys(ledger) if "|month|" in k}
    assert months == {"2026-10", "2026-11", "2026-12"}
    assert {k for k in _keys(ledger) if "|total|" in k} == {"key|k1|total|all", "key|k2|total|all"}
    # What is kept is still right: today's spending.
    assert ledger._spent[_day(last)] == 1.0


def test_an_account_with_a_reservation_held_is_kept_until_it_settles() -> None:
    ledger = MemoryLedger()
    old = date(2026, 3, 1)
    assert ledger.reserve_now([(_day(old), 10.0)], 2.0) is None  # a long call, still running
    _spend(ledger, _day(old + timedelta(days=10)))
    assert _day(old) in ledger._reserved
    ledger.settle_now([_day(old)], 2.0, 1.5)  # a late settle lands, as in Redis
    assert ledger._spent[_day(old)] == 1.5
    _spend(ledger, _day(old + timedelta(days=11)))
    assert _day(old) not in _keys(ledger)


def test_keys_of_no_day_or_month_never_move_today_or_go() -> None:
    ledger = MemoryLedger()
    for key in ("a|b|day|9999-99-99", "a|b|day|zzzz", "a|b|month|2026-13", "x", "a|b|week|w"):
        _spend(ledger, key)
    _spend(ledger, _day(date(2026, 5, 1)))
    _spend(ledger, _day(date(2026, 6, 1)))
    assert ledger._day == "2026-06-01"
    assert {"a|b|day|9999-99-99", "a|b|day|zzzz", "x", "a|b|week|w"} <= _keys(ledger)


def test_a_clock_going_back_drops_nothing() -> None:
    ledger = MemoryLedger()
    _spend(ledger, _day(date(2026, 8, 20)))
    _spend(ledger, _day(date(2026, 8, 1)))  # an earlier day: not newer, nothing swept
    assert _day(date(2026, 8, 1)) in _keys(ledger)


def test_budget_keys_are_what_the_ledger_reads() -> None:
    # The ledger reads the period and its id from the key Budgets writes.
    key = BudgetLimit(5.0, "day", scope="key").ledger_key("k1", 1_796_400_000.0)
    assert key.split("|")[-2:] == ["day", "2026-12-04"]
    key = BudgetLimit(5.0, "month", scope="key").ledger_key("k1", 1_796_400_000.0)
    assert key.split("|")[-2:] == ["month", "2026-12"]


def test_a_clock_far_ahead_for_one_call_drops_no_account_of_now() -> None:
    """A clock set wrong for a moment (a year ahead, then back) must not drop today's and this
    month's accounts: Redis expires by its own clock, not by the periods callers name, so
    there the spending stays and the budget holds. (Dropping them let a month's budget be
    spent again in full.)"""
    ledger = MemoryLedger()
    today = date(2026, 12, 4)
    month, day = _month(today), _day(today)
    _spend(ledger, month, 9.0)
    _spend(ledger, day, 9.0)
    ahead = date(2027, 12, 4)
    _spend(ledger, _month(ahead), 0.5)
    _spend(ledger, _day(ahead), 0.5)
    # The clock is back: $9 of $10 spent, so $5 more does not fit either budget.
    assert ledger.reserve_now([(month, 10.0)], 5.0) == 0
    assert ledger.reserve_now([(day, 10.0)], 5.0) == 0


def test_the_first_of_next_month_for_a_moment_keeps_todays_day_account() -> None:
    ledger = MemoryLedger()
    today = date(2026, 12, 4)
    for d in (today - timedelta(days=1), today):
        _spend(ledger, _day(d))
        _spend(ledger, _month(d))
    _spend(ledger, _day(today), 8.0)  # $9 today
    _spend(ledger, _month(date(2027, 1, 1)), 0.1)  # one call with a clock a month ahead
    assert ledger.reserve_now([(_day(today), 10.0)], 5.0) == 0


def test_an_idle_week_then_days_in_a_row_still_drops_the_old() -> None:
    ledger = MemoryLedger()
    start = date(2026, 3, 1)
    _spend(ledger, _day(start))
    _spend(ledger, _day(start + timedelta(days=1)))
    later = start + timedelta(days=9)
    _spend(ledger, _day(later))  # a leap: nothing dropped yet
    _spend(ledger, _day(later + timedelta(days=1)))  # the next day: the old days go
    days = {k.rsplit("|", 1)[1] for k in _keys(ledger)}
    assert days == {later.isoformat(), (later + timedelta(days=1)).isoformat()}


def test_scope_values_a_caller_chooses_do_not_move_today() -> None:
    """A tag value (a user id, a team) with ``|`` and a date in it: the period and its id are
    the key's last two fields, which ``ledger_key`` writes, so nothing a value holds is read."""
    ledger = MemoryLedger()
    _spend(ledger, _day(date(2026, 12, 4)))
    _spend(ledger, _month(date(2026, 12, 4)))
    now = 1_796_400_000.0  # 2026-12-04
    for value in ("x|day|9999-12-31", "x|month|9999-12", "9999-12-31|day", "|", "a|b|c|d"):
        for period in ("day", "month"):
            key = BudgetLimit(5.0, period, scope="user").ledger_key(value, now)  # type: ignore[arg-type]
            _spend(ledger, key)
    assert (ledger._day, ledger._month) == ("2026-12-04", "2026-12")
    assert _day(date(2026, 12, 4)) in _keys(ledger)


def test_an_iso_week_date_is_not_a_day() -> None:
    # ``date.fromisoformat`` reads ``2026-W49-5`` too; it sorts after every real day.
    ledger = MemoryLedger()
    _spend(ledger, _day(date(2026, 12, 4)))
    _spend(ledger, "key|k1|day|2026-W49-5")
    assert ledger._day == "2026-12-04"


def test_an_account_of_overlapping_calls_settled_in_full_is_dropped_despite_float_residue() -> None:
    # Two calls overlap on one day's account: 0.1 + 0.2 reserved, each settled. In floats the
    # hold is left at 0.30000000000000004 - 0.1 - 0.2 = 5.5e-17, not 0: the account would look
    # held for ever and never be dropped (most busy accounts have overlapping calls).
    ledger = MemoryLedger()
    old = date(2026, 3, 1)
    assert ledger.reserve_now([(_day(old), 10.0)], 0.1) is None
    assert ledger.reserve_now([(_day(old), 10.0)], 0.2) is None
    ledger.settle_now([_day(old)], 0.1, 0.1)
    ledger.settle_now([_day(old)], 0.2, 0.2)
    assert ledger._reserved[_day(old)] == 0.0
    for n in (1, 2, 3, 4, 5):
        _spend(ledger, _day(old + timedelta(days=n)))
    assert _day(old) not in _keys(ledger)
