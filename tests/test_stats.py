"""Success-rate intervals against values computed independently."""

from __future__ import annotations

import pytest

from lwd.experiments.stats import across_seeds, apart_in_every_seed, success_interval, wilson


def test_wilson_contains_its_estimate_exactly_at_the_edges():
    for n in (1, 7, 50, 100, 500):
        for k in range(n + 1):
            interval = wilson(k, n)
            assert interval.low <= interval.estimate <= interval.high
    assert wilson(0, 50).low == 0.0 and wilson(50, 50).high == 1.0


def test_wilson_matches_textbook_values():
    # Wilson score interval, 95%: 8 of 10 -> [0.4902, 0.9433]; 0 of 50 -> [0, 0.0713]; 50 of 50 -> [0.9287, 1].
    assert (wilson(8, 10).low, wilson(8, 10).high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert (wilson(0, 50).low, wilson(0, 50).high) == pytest.approx((0.0, 0.0713), abs=1e-4)
    assert (wilson(50, 50).low, wilson(50, 50).high) == pytest.approx((0.9287, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_interval_across_seeds_is_a_t_interval_on_the_seed_means():
    # mean 0.6, sd 0.1, 3 seeds: t(0.975, 2) = 4.3027 -> half width 0.2484
    interval = across_seeds([0.5, 0.6, 0.7])
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((0.6, 0.3516, 0.8484), abs=1e-4)
    assert across_seeds([0.98, 1.0, 1.0]).high == 1.0  # clipped
    with pytest.raises(ValueError, match="2 seeds"):
        across_seeds([0.5])


def test_cell_interval_uses_seeds_when_there_are_several_and_separation_is_non_overlap():
    one = success_interval([(40, 50)])
    assert one.kind == "wilson"
    many = success_interval([(40, 50), (45, 50), (42, 50)])
    assert many.kind == "t+wilson" and many.estimate == pytest.approx(127 / 150)
    assert many.low == pytest.approx(across_seeds([0.8, 0.9, 0.84]).low)  # the seeds disagree: t is wider
    agreeing = success_interval([(49, 50)] * 3)  # identical seeds: the t interval has zero width
    assert (agreeing.low, agreeing.high) == pytest.approx((wilson(147, 150).low, wilson(147, 150).high))
    assert wilson(45, 50).separated_from(wilson(20, 50))
    assert not wilson(45, 50).separated_from(wilson(40, 50))


def test_apart_in_every_seed_needs_every_seed_ordered_and_pooled_episodes_separated():
    # PushT, LWD vs WARPD under pushes at H = 16 (2 seeds): 17 + 14 of 100 against 2 + 3 of 100.
    lwd, warpd = [(17, 50), (14, 50)], [(2, 50), (3, 50)]
    assert not success_interval(lwd).separated_from(success_interval(warpd))  # t with 1 df: [0, 1]-wide
    assert apart_in_every_seed(lwd, warpd) and not apart_in_every_seed(warpd, lwd)
    # one seed of the better method falls below one of the other: not apart, however large the pooled gap
    assert not apart_in_every_seed([(40, 50), (40, 50), (5, 50)], [(6, 50), (6, 50), (6, 50)])
    # ordered in every seed but too few episodes for the pooled intervals to separate
    assert not apart_in_every_seed([(6, 10), (7, 10)], [(4, 10), (5, 10)])
    assert not apart_in_every_seed([], warpd)
