"""reach-wall from the low start: two experts round the wall on opposite sides, and their mean walks into it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from lwd.demos import collect_demos, parse_styles, rollout_expert  # noqa: E402
from lwd.envs.reach_wall import LOW_START, ReachWallLowEnv  # noqa: E402
from lwd.experts.reach_wall import STYLES, WALL_HIGH, WALL_LOW, DetourExpert  # noqa: E402
from lwd.suites import make_suite  # noqa: E402

SEED = 100_007


@pytest.fixture(scope="module")
def env():
    env = ReachWallLowEnv()
    yield env
    env.close()


def _run(env, style: str, seed: int = SEED, steps: int = 500):
    run = rollout_expert(env, DetourExpert(style), seed, steps)
    return run, np.asarray(run.obs, np.float64)[:, :3]


def test_expert_mirrors_the_simulators_wall(env):
    low, high = env.wall_box()
    np.testing.assert_allclose(low, WALL_LOW, atol=1e-9)
    np.testing.assert_allclose(high, WALL_HIGH, atol=1e-9)


@pytest.mark.parametrize("style", STYLES)
def test_each_detour_style_is_deterministic_per_seed(env, style):
    first, path = _run(env, style, steps=40)
    again, path_again = _run(env, style, steps=40)
    np.testing.assert_array_equal(path, path_again)
    np.testing.assert_array_equal(np.asarray(first.actions), np.asarray(again.actions))


def test_styles_leave_one_start_state_and_pass_the_wall_40_cm_apart_both_succeeding(env):
    """Same first observation; opposite first sideways moves at the same forward speed; where the
    fingertips cross the wall's front face, left is 8 cm beyond its left end and right 8 cm beyond its
    right end; neither touches the wall; both reach the goal."""
    runs = {style: _run(env, style) for style in STYLES}
    (left, left_path), (right, right_path) = runs["left"], runs["right"]
    np.testing.assert_array_equal(left.obs[0], right.obs[0])
    assert left.actions[0][0] == -1.0 and right.actions[0][0] == 1.0 and left.actions[0][1] == right.actions[0][1] == 1.0
    crossing = {s: path[int(np.argmax(path[:, 1] >= WALL_LOW[1]))] for s, (_, path) in runs.items()}
    assert crossing["left"][0] < WALL_LOW[0] - 0.07 and crossing["right"][0] > WALL_HIGH[0] + 0.07
    assert crossing["right"][0] - crossing["left"][0] > 0.38
    for _, path in runs.values():
        beside = (path[:, 0] > WALL_LOW[0] - 0.03) & (path[:, 0] < WALL_HIGH[0] + 0.03) & (path[:, 2] < WALL_HIGH[2])
        assert not (beside & (path[:, 1] > WALL_LOW[1] - 0.03) & (path[:, 1] < WALL_HIGH[1] + 0.03)).any()
    assert left.success and right.success
    for run, path in runs.values():  # below the wall's top until over the goal: no climb near the wall to copy
        over_goal = np.linalg.norm(path[:, :2] - np.asarray(run.obs[0][-3:-1], np.float64), axis=1) < 0.02
        assert path[: int(np.argmax(over_goal)), 2].max() < WALL_HIGH[2] - 0.02


def test_the_mean_of_the_two_styles_walks_into_the_wall_and_stays(env):
    """Averaging the two experts' actions at every state (what a regressor of the mixed data fits)
    keeps the hand on the start's centre line, straight into the wall, pressed there until the end."""
    experts = [DetourExpert(style) for style in STYLES]
    obs, _ = env.reset(seed=SEED)
    for expert in experts:
        expert.reset(SEED)
    path, success = [obs[:3]], False
    for _ in range(120):
        obs, _, terminated, _, info = env.step(np.mean([e.act(obs) for e in experts], axis=0))
        path.append(obs[:3])
        success |= info["success"]
    path = np.asarray(path, np.float64)
    assert not success
    assert np.abs(path[:, 0] - path[0, 0]).max() < 0.01
    assert WALL_LOW[1] - 0.03 < path[-40:, 1].min() and path[:, 1].max() < WALL_LOW[1]


def test_low_start_is_one_state_and_the_spread_start_a_seeded_sideways_offset():
    fixed, spread = ReachWallLowEnv(), ReachWallLowEnv(start_spread=0.05)
    try:
        starts = [fixed.reset(seed=s)[0][:3] for s in (1, 2)]
        np.testing.assert_array_equal(starts[0], starts[1])
        assert abs(starts[0][2] - LOW_START[2]) < 0.01 and starts[0][2] < WALL_HIGH[2]
        offsets = [spread.reset(seed=s)[1]["hand_start"] - LOW_START for s in (1, 2, 1)]
        np.testing.assert_array_equal(offsets[0], offsets[2])
        assert offsets[0][0] != offsets[1][0] and all(abs(o[0]) <= 0.05 and not o[1:].any() for o in offsets)
    finally:
        fixed.close()
        spread.close()
    with pytest.raises(ValueError, match="start_spread must be in"):
        ReachWallLowEnv(start_spread=0.2)


def test_reach_wall_low_suites_offer_left_and_right_and_record_them():
    suite = make_suite("metaworld/reach-wall-low")
    assert suite.styles == STYLES and make_suite("metaworld/reach-wall-low/spread-5").name == "metaworld/reach-wall-low/spread-5"
    with pytest.raises(ValueError, match="unknown variant 'sideways'"):
        make_suite("metaworld/reach-wall-low/sideways")
    with pytest.raises(ValueError, match="spread must be 0-10 cm"):
        make_suite("metaworld/reach-wall-low/spread-12")
    episodes = collect_demos(suite, 2, styles=parse_styles("left,right", suite), progress=False)
    assert episodes.attrs["styles"] == list(STYLES) and sum(episodes.attrs["style_counts"].values()) == 2
    for i in range(2):
        episode = episodes.episode(i)
        passed_x = episode["obs"][np.argmax(episode["obs"][:, 1] >= WALL_LOW[1]), 0]
        assert (passed_x < WALL_LOW[0]) == (STYLES[episode["style"][0]] == "left")
