"""PushT env (seeding, observations, info, perturbation hook) and the planning expert."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from lwd.envs.pusht import (  # noqa: E402
    BLOCK_KEYPOINTS_LOCAL,
    MAX_EPISODE_STEPS,
    OBS_TYPES,
    STATE_LAYOUT,
    SUCCESS_COVERAGE,
    PushTEnv,
    block_keypoints,
    keypoint_obs,
)
from lwd.experts.pusht import PushTExpert  # noqa: E402
from lwd.methods import Cost, Policy, RuntimeOptions  # noqa: E402


def _rollout(env: PushTEnv, seed: int, steps: int = 20) -> tuple[list[np.ndarray], list[dict]]:
    actions = np.random.default_rng(seed).uniform(0, 512, size=(steps, 2)).astype(np.float32)
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        infos.append(info)
        if terminated or truncated:
            break
    return observations, infos


def _run_expert(env: PushTEnv, expert: PushTExpert, seed: int) -> tuple[bool, np.ndarray]:
    obs, info = env.reset(seed=seed)
    expert.reset(seed)
    actions = []
    for _ in range(MAX_EPISODE_STEPS):
        action = expert.act(obs, info)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return bool(info["success"]), np.array(actions)


def test_same_seed_gives_the_same_episode_and_other_seeds_do_not():
    a, b = PushTEnv(), PushTEnv()
    obs_a, infos_a = _rollout(a, seed=5)
    obs_b, infos_b = _rollout(b, seed=5)
    np.testing.assert_array_equal(np.array(obs_a), np.array(obs_b))
    np.testing.assert_array_equal(np.array([i["state"] for i in infos_a]), np.array([i["state"] for i in infos_b]))
    other, _ = _rollout(a, seed=6)
    assert not np.allclose(obs_a[0], other[0])


def test_reset_requires_a_seed_and_unknown_obs_type_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        PushTEnv().reset()
    with pytest.raises(ValueError, match="keypoints"):
        PushTEnv(obs_type="pixels")


@pytest.mark.parametrize("obs_type", sorted(OBS_TYPES))
def test_observations_have_the_documented_dims_and_spaces(obs_type):
    env = PushTEnv(obs_type=obs_type)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (OBS_TYPES[obs_type],) == env.observation_space.shape
    assert obs.dtype == np.float32
    obs, *_ = env.step(np.array([256.0, 256.0], dtype=np.float32))
    assert obs.shape == (OBS_TYPES[obs_type],) and obs.dtype == np.float32
    assert env.action_space.shape == (2,)
    np.testing.assert_array_equal(env.action_space.low, [0, 0])
    np.testing.assert_array_equal(env.action_space.high, [512, 512])


def test_keypoint_obs_is_the_rigidly_moved_local_keypoints_plus_the_agent():
    kp_env, state_env = PushTEnv("keypoints"), PushTEnv("state")
    for seed in (0, 3):
        kp_obs, info = kp_env.reset(seed=seed)
        state, _ = state_env.reset(seed=seed)
        np.testing.assert_allclose(kp_obs, keypoint_obs(state), atol=1e-3)
        np.testing.assert_allclose(kp_obs[18:], state[:2], atol=1e-4)
        # a rigid transform: the keypoints keep their mutual distances and move with the block pose
        world = kp_obs[:18].reshape(9, 2).astype(np.float64)
        dist = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
        np.testing.assert_allclose(dist(world), dist(BLOCK_KEYPOINTS_LOCAL), atol=1e-3)
        full = info["state"]
        np.testing.assert_allclose(world, block_keypoints(full[4:6], full[6]), atol=1e-3)
    np.testing.assert_allclose(block_keypoints(np.zeros(2), 0.0), BLOCK_KEYPOINTS_LOCAL)
    turned = block_keypoints(np.array([10.0, 20.0]), np.pi / 2)
    np.testing.assert_allclose(turned, np.c_[-BLOCK_KEYPOINTS_LOCAL[:, 1], BLOCK_KEYPOINTS_LOCAL[:, 0]] + [10, 20])


def test_local_keypoints_are_what_diffusion_policys_procedure_yields():
    """DP draws the T at (256, 300, 0), takes the non-white pixels, farthest-point-samples 9 of them
    from a start drawn by default_rng(0), and adds uniform(0, 1) jitter from the same generator."""
    pygame = pytest.importorskip("pygame")
    import pymunk
    from gym_pusht.envs.pusht import PushTEnv as RawPushT
    from gym_pusht.envs.pymunk_override import DrawOptions

    space = pymunk.Space()
    RawPushT.add_tee(space, (256, 300), 0)
    screen = pygame.Surface((512, 512))
    screen.fill(pygame.Color("white"))
    space.debug_draw(DrawOptions(screen))
    img = np.uint8(pygame.surfarray.array3d(screen).transpose(1, 0, 2))
    ys, xs = np.nonzero((img != 255).any(axis=-1))
    pixels = np.c_[xs, ys].astype(np.float64) - [256, 300]
    rng = np.random.default_rng(0)
    chosen = [pixels[rng.choice(len(pixels))]]
    for _ in range(8):
        nearest = np.linalg.norm(pixels[:, None] - np.array(chosen)[None], axis=-1).min(axis=1)
        chosen.append(pixels[np.argmax(nearest)])
    np.testing.assert_allclose(np.array(chosen) + rng.uniform(0, 1, size=(9, 2)), BLOCK_KEYPOINTS_LOCAL)


def test_info_carries_success_coverage_score_and_privileged_state():
    env = PushTEnv(obs_type="state")
    obs, info = env.reset(seed=2)
    infos = [info]
    for _ in range(3):
        obs, reward, *_, info = env.step(np.array([300.0, 300.0], dtype=np.float32))
        infos.append(info)
        assert reward == pytest.approx(info["score"])
    for info in infos:
        assert isinstance(info["success"], bool)
        assert info["success"] == (info["coverage"] > SUCCESS_COVERAGE)
        assert info["score"] == pytest.approx(np.clip(info["coverage"] / SUCCESS_COVERAGE, 0, 1))
        assert info["state"].dtype == np.float64 and info["state"].shape == (len(STATE_LAYOUT),)
    state = infos[-1]["state"]
    np.testing.assert_allclose(obs[:4], state[[0, 1, 4, 5]], atol=1e-3)
    assert obs[4] == pytest.approx(state[6] % (2 * np.pi), abs=1e-5)


def test_actions_are_clipped_to_the_arena_and_episodes_truncate_at_the_limit():
    a, b = PushTEnv(max_episode_steps=3), PushTEnv(max_episode_steps=3)
    a.reset(seed=4)
    b.reset(seed=4)
    for step in range(3):
        out_a = a.step(np.array([-100.0, 900.0], dtype=np.float32))
        out_b = b.step(np.array([0.0, 512.0], dtype=np.float32))
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[3] == (step == 2) and not out_a[2]


def test_push_object_moves_the_block_by_the_requested_distance_only():
    env = PushTEnv()
    _, info = env.reset(seed=8)
    before = info["state"]
    env.push_object(np.random.default_rng(0), 25.0)
    after = env.sim_state()
    assert np.linalg.norm(after[4:6] - before[4:6]) == pytest.approx(25.0)
    assert after[6] == pytest.approx(before[6])
    np.testing.assert_array_equal(after[7:], 0.0)
    np.testing.assert_array_equal(after[:2], before[:2])
    # the same generator state gives the same push
    again = PushTEnv()
    again.reset(seed=8)
    again.push_object(np.random.default_rng(0), 25.0)
    np.testing.assert_array_equal(again.sim_state(), after)


def test_push_object_keeps_the_block_inside_the_arena():
    env = PushTEnv()
    env.reset(seed=8)
    rng = np.random.default_rng(1)
    for _ in range(20):
        env.push_object(rng, 400.0)
        block = env._env.block
        corners = np.array([block.local_to_world(v) for s in block.shapes for v in s.get_vertices()])
        assert corners.min() >= 7.0 - 1e-6 and corners.max() <= 504.0 + 1e-6
    env.step(np.array([256.0, 256.0], dtype=np.float32))  # the sim still steps


@pytest.mark.parametrize("seed", [100000, 100001, 100002])
def test_expert_solves_held_out_starts_within_the_step_limit(seed):
    success, actions = _run_expert(PushTEnv(), PushTExpert(), seed)
    assert success and len(actions) <= MAX_EPISODE_STEPS
    assert actions.dtype == np.float32 and actions.shape[1] == 2


def test_expert_salt_changes_the_demonstration_but_not_its_success():
    env = PushTEnv()
    success_a, actions_a = _run_expert(env, PushTExpert(salt=0), seed=12)
    success_b, actions_b = _run_expert(env, PushTExpert(salt=1), seed=12)
    success_c, actions_c = _run_expert(env, PushTExpert(salt=0), seed=12)
    assert success_a and success_b
    np.testing.assert_array_equal(actions_a, actions_c)  # same seed and salt: same demonstration
    n = min(len(actions_a), len(actions_b))
    assert len(actions_a) != len(actions_b) or not np.allclose(actions_a[:n], actions_b[:n])


class _RandomPushPolicy(Policy):
    """Random targets drawn from the episode seed: moves the block, so scores change over an episode."""

    def reset(self, seed: int, task: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self._rng.uniform(100, 400, size=2).astype(np.float32)


class _RandomPushMethod:
    """Just enough of the Method contract for `evaluate` (it is never trained or registered)."""

    name = "random-push"

    def __init__(self) -> None:
        from lwd.config import DataInfo

        self.info = DataInfo(obs_dim=20, action_dim=2, suite="pusht")

    def runtime_options(self) -> RuntimeOptions:
        return RuntimeOptions()

    def make_policy(self, runtime: RuntimeOptions) -> _RandomPushPolicy:
        return _RandomPushPolicy()

    def cost(self, runtime: RuntimeOptions, episode_steps: int | None = None) -> Cost:
        return Cost(params_total=0, params_per_step=0, flops_policy_step=0)


def test_evaluation_reports_the_max_and_the_final_score_of_each_episode():
    """Both per-episode scores match a replay of the same policy in a plain env."""
    from lwd.suites import make_suite
    from lwd.evaluation.evaluate import evaluate

    suite = make_suite("pusht")
    result = evaluate(_RandomPushMethod(), suite, episodes_per_task=3, n_envs=2, progress=False)
    env = PushTEnv()
    for episode in result["episodes"]:
        policy = _RandomPushPolicy()
        policy.reset(episode["seed"])
        obs, info = env.reset(seed=episode["seed"])
        scores = []
        for _ in range(MAX_EPISODE_STEPS):
            obs, _, terminated, truncated, info = env.step(policy.act(obs))
            scores.append(info["score"])
            if terminated or truncated:
                break
        assert episode["steps"] == len(scores)
        assert episode["max_score"] == pytest.approx(max(scores))
        assert episode["final_score"] == pytest.approx(scores[-1])
    assert result["mean_final_score"] == pytest.approx(np.mean([e["final_score"] for e in result["episodes"]]))
    assert any(e["final_score"] < e["max_score"] for e in result["episodes"])  # random pushes undo progress


def test_the_expert_mirrors_the_env_task_geometry():
    """The expert keeps its own copy of gym-pusht's goal, arena and success threshold (it does not
    import lwd.envs); they must agree with the env's."""
    from lwd.envs import pusht as env_side
    from lwd.experts import pusht as expert_side

    np.testing.assert_array_equal(expert_side.GOAL_POSE, env_side.GOAL_POSE)
    assert (expert_side.ARENA_SIZE, expert_side.SUCCESS_COVERAGE) == (env_side.ARENA_SIZE, env_side.SUCCESS_COVERAGE)


def test_noise_injected_demos_carry_the_experts_clean_labels():
    """DART: the env executes noisy actions, the dataset records what the expert chose on the
    states it actually saw; the noise is drawn from the episode seed."""
    from lwd.demos import collect_demos, rollout_expert
    from lwd.suites import make_suite

    suite = make_suite("pusht/state")
    env = suite.make_env("pusht")
    run = rollout_expert(env, suite.make_expert("pusht"), seed=3, max_steps=40, dart_noise=0.2)
    assert len(run.executed) == len(run.actions) == 40
    executed, labels = np.stack(run.executed), np.stack(run.actions)
    assert np.abs(executed - labels).mean() > 10.0  # 0.2 x 256 px of noise on a 512 px box
    # Replaying the executed actions reproduces the visited states; the expert, fed those states,
    # gives exactly the recorded labels.
    expert = suite.make_expert("pusht")
    obs, info = env.reset(seed=3)
    expert.reset(3)
    for t in range(40):
        np.testing.assert_array_equal(obs, run.obs[t])
        np.testing.assert_array_equal(expert.act(obs, info), labels[t])
        obs, _, _, _, info = env.step(executed[t])
    again = rollout_expert(env, suite.make_expert("pusht"), seed=3, max_steps=40, dart_noise=0.2)
    np.testing.assert_array_equal(np.stack(again.executed), executed)  # seeded noise

    data = collect_demos(suite, 1, dart_noise=0.1, keep_failures=True, progress=False, perturb="block-push:10:0.05")
    assert (data.attrs["dart_noise"], data.attrs["perturbation"]) == (0.1, "block-push:10:0.05")
    # the store keeps what a dynamics model needs: executed actions beside the labels, and which
    # transitions a push interrupted (the env's own push count, over 300 steps at p = 0.05)
    steps = data.episode_ends[-1]
    assert data.data["executed_action"].shape == data.data["action"].shape == (steps, 2)
    assert np.abs(data.data["executed_action"] - data.data["action"]).mean() > 5.0
    pushed = data.data["pushed"]
    assert pushed.shape == (steps,) and 0 < pushed.sum() < steps
    clean = collect_demos(suite, 1, keep_failures=True, progress=False)
    assert "executed_action" not in clean.data and "pushed" not in clean.data


def test_calibration_runs_the_expert_under_each_push_and_picks_the_largest_it_survives():
    from lwd.experiments.calibrate import calibrate_push
    from lwd.suites import make_suite

    result = calibrate_push(make_suite("pusht/state"), [0, 400], probability=0.5, episodes=2, progress=False)
    assert result["push"] == "block-push"
    by_size = {r["magnitude"]: r for r in result["rows"]}
    assert by_size[0]["successes"] == 2  # no push: the expert solves both test seeds
    assert by_size[400]["successes"] < 2  # the T thrown across the arena half the steps
    assert result["chosen"] == "block-push:0:0.5"
