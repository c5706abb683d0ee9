"""The hybrid logical clock: packing, monotonic stamps, merging remote stamps, refusing runaways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import hlc
from protocol.hlc import COUNTER_MAX, MS_MAX, Clock, pack, unpack, wall_ms

T = 1_767_600_000_000  # 2026-01-05 08:00:00 UTC


def test_pack_layout_is_48_bits_of_ms_and_16_of_counter() -> None:
    assert pack(1, 0) == 1 << 16
    assert pack(0, 1) == 1
    assert pack(T, 7) == (T << 16) | 7
    assert pack(MS_MAX, COUNTER_MAX) == (1 << 64) - 1


@given(st.integers(0, MS_MAX), st.integers(0, COUNTER_MAX))
def test_pack_unpack_round_trip(ms: int, counter: int) -> None:
    value = pack(ms, counter)
    assert unpack(value) == (ms, counter)
    assert wall_ms(value) == ms


@given(st.integers(0, MS_MAX), st.integers(0, COUNTER_MAX), st.integers(0, MS_MAX),
       st.integers(0, COUNTER_MAX))
def test_packed_order_is_ms_then_counter(ms1: int, c1: int, ms2: int, c2: int) -> None:
    assert (pack(ms1, c1) < pack(ms2, c2)) == ((ms1, c1) < (ms2, c2))


@pytest.mark.parametrize(("ms", "counter"), [(-1, 0), (MS_MAX + 1, 0), (0, -1), (0, COUNTER_MAX + 1)])
def test_pack_refuses_out_of_range(ms: int, counter: int) -> None:
    with pytest.raises(ValueError):
        pack(ms, counter)


def test_send_uses_wall_clock_when_it_is_ahead() -> None:
    clock, stamp = Clock().send(T)
    assert unpack(stamp) == (T, 0)
    assert clock.last == stamp
    clock, stamp = clock.send(T + 5)
    assert unpack(stamp) == (T + 5, 0)


def test_send_in_the_same_ms_bumps_the_counter() -> None:
    clock, first = Clock().send(T)
    clock, second = clock.send(T)
    clock, third = clock.send(T)
    assert [unpack(s) for s in (first, second, third)] == [(T, 0), (T, 1), (T, 2)]


def test_send_is_monotonic_when_the_wall_clock_goes_backwards() -> None:
    clock, first = Clock().send(T)
    clock, second = clock.send(T - 60_000)  # NTP stepped the clock back a minute
    clock, third = clock.send(T - 120_000)
    assert first < second < third
    assert unpack(second) == (T, 1)
    assert unpack(third) == (T, 2)


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50))
def test_send_is_strictly_increasing_for_any_wall_clock(walls: list[int]) -> None:
    clock = Clock()
    stamps = []
    for now in walls:
        clock, stamp = clock.send(T + now)
        stamps.append(stamp)
        assert wall_ms(stamp) >= T + now
    assert stamps == sorted(set(stamps))


def test_counter_overflow_borrows_the_next_ms() -> None:
    clock = Clock(pack(T, COUNTER_MAX))
    clock, stamp = clock.send(T)
    assert unpack(stamp) == (T + 1, 0)
    assert stamp > pack(T, COUNTER_MAX)
    clock, stamp = clock.send(T)  # the wall clock is still at T: stay on the borrowed ms
    assert unpack(stamp) == (T + 1, 1)


def test_receive_overflow_borrows_the_next_ms() -> None:
    clock, flag = Clock(pack(T, 3)).receive(pack(T, COUNTER_MAX), T)
    assert flag is False
    assert unpack(clock.last) == (T + 1, 0)


def test_receive_remote_ahead_takes_the_remote_time() -> None:
    clock, flag = Clock(pack(T, 4)).receive(pack(T + 500, 9), T + 100)
    assert flag is False
    assert unpack(clock.last) == (T + 500, 10)
    _, stamp = clock.send(T + 100)
    assert stamp > pack(T + 500, 9)


def test_receive_remote_behind_keeps_local_time() -> None:
    clock, flag = Clock(pack(T, 4)).receive(pack(T - 500, 9), T - 10)
    assert flag is False
    assert unpack(clock.last) == (T, 5)


def test_receive_equal_ms_takes_the_larger_counter_plus_one() -> None:
    clock, _ = Clock(pack(T, 4)).receive(pack(T, 9), T - 1)
    assert unpack(clock.last) == (T, 10)
    clock, _ = Clock(pack(T, 9)).receive(pack(T, 4), T - 1)
    assert unpack(clock.last) == (T, 10)


def test_receive_wall_clock_ahead_of_both_resets_the_counter() -> None:
    clock, flag = Clock(pack(T, 4)).receive(pack(T + 1, 9), T + 50)
    assert flag is False
    assert unpack(clock.last) == (T + 50, 0)


@given(st.integers(0, 10**6), st.integers(0, COUNTER_MAX), st.integers(0, 10**6),
       st.integers(0, COUNTER_MAX), st.integers(0, 10**6))
def test_receive_result_is_above_both_stamps(l_ms: int, l_c: int, r_ms: int, r_c: int,
                                             now: int) -> None:
    local, remote = pack(T + l_ms, l_c), pack(T + r_ms, r_c)
    clock, flag = Clock(local).receive(remote, T + now)
    assert flag is False
    assert clock.last > local
    assert clock.last > remote
    assert wall_ms(clock.last) >= T + now


def test_max_forward_refuses_to_drag_the_clock_forward() -> None:
    start = Clock(pack(T, 4))
    day = 86_400_000
    clock, flag = start.receive(pack(T + 3 * day, 0), T, max_forward_ms=60_000)
    assert flag is True
    assert clock == start
    _, stamp = clock.send(T)
    assert wall_ms(stamp) == T  # our next stamp stays near our own time


def test_max_forward_accepts_a_stamp_within_the_bound() -> None:
    clock, flag = Clock(pack(T, 4)).receive(pack(T + 60_000, 0), T, max_forward_ms=60_000)
    assert flag is False
    assert unpack(clock.last) == (T + 60_000, 1)
    clock, flag = Clock(pack(T, 4)).receive(pack(T + 60_001, 0), T, max_forward_ms=60_000)
    assert flag is True


def test_without_max_forward_any_remote_is_merged() -> None:
    clock, flag = Clock().receive(pack(T + 10**9, 0), T)
    assert flag is False
    assert wall_ms(clock.last) == T + 10**9


def test_clock_is_a_frozen_value() -> None:
    clock = Clock(5)
    with pytest.raises(AttributeError):
        clock.last = 6  # type: ignore[misc]
    assert hlc.Clock(5) == clock
