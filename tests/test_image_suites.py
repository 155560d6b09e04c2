"""Image suites: pusht/image and robomimic/<task>/image observe {"obs": low-dim, <image key>: frame};
demos record the frames; evaluation hands each model what it reads; state-only suites are unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lwd.config import DataInfo
from lwd.methods.base import Cost, Method, Policy, RuntimeOptions
from lwd.methods.history import ObsHistory
from lwd.suites import make_suite

pytest.importorskip("gym_pusht")


def test_pusht_image_observes_the_agent_position_and_gym_pushts_96px_frame_on_the_same_physics():
    from lwd.envs.pusht import PushTEnv

    image, keypoints = PushTEnv("image"), PushTEnv("keypoints")
    obs, _ = image.reset(seed=7)
    reference, _ = keypoints.reset(seed=7)
    assert image.observation_space.contains(obs)
    assert obs["obs"].dtype == np.float32 and obs["obs"].shape == (2,)
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (96, 96, 3)
    first = obs["image"]
    for action in np.random.default_rng(0).uniform(0, 512, size=(5, 2)):
        obs, *_ = image.step(action)
        reference, *_ = keypoints.step(action)
        np.testing.assert_array_equal(obs["obs"], reference[-2:])  # the agent position, as the keypoint obs has it
    assert not np.array_equal(obs["image"], first)  # the agent moved in the picture
    assert (obs["image"] == 255).all(axis=-1).mean() > 0.5  # mostly the white arena, not a blank frame
    image.close(), keypoints.close()


def test_pusht_image_demos_record_a_frame_per_step_and_the_same_actions_as_state_demos():
    from lwd.demos import collect_demos
    from lwd.envs.pusht import PushTEnv

    with_frames = collect_demos(make_suite("pusht/image"), 1, progress=False)
    state = collect_demos(make_suite("pusht"), 1, progress=False)
    assert with_frames.image_keys == ["image"] and with_frames.frame_shapes() == {"image": (96, 96, 3)}
    np.testing.assert_array_equal(with_frames.data["action"], state.data["action"])  # the expert acts from the sim state
    np.testing.assert_array_equal(with_frames.data["obs"], state.data["obs"][:, -2:])
    assert len(with_frames.frames["image"]) == with_frames.num_steps
    first, _ = PushTEnv("image").reset(seed=with_frames.attrs["seeds"][0])
    np.testing.assert_array_equal(with_frames.frames["image"][0], first["image"])


class _Recorder(Policy):
    seen: list = []

    def reset(self, seed: int, task: int | None = None) -> None:
        pass

    def act(self, obs):
        type(self).seen.append(obs)
        self.steps += 1
        return np.array([256.0, 256.0], np.float32)


class _RecorderMethod(Method):
    """Not registered: just enough of the contract for `evaluate`."""

    name = "recorder"

    def make_policy(self, runtime: RuntimeOptions | None = None) -> Policy:
        return _Recorder()

    def cost(self, runtime: RuntimeOptions | None = None, episode_steps: int | None = None) -> Cost:
        return Cost(0, 0, 0)


def _short(suite, steps: int):
    from lwd.envs.pusht import PushTEnv

    return dataclasses.replace(suite, make_task_env=lambda task, **kw: PushTEnv("image", **{"max_episode_steps": steps, **kw}))


def test_evaluation_gives_image_models_the_dict_and_state_models_the_low_dim_array():
    from lwd.envs.pusht import PushTEnv
    from lwd.evaluation.evaluate import evaluate

    suite = _short(make_suite("pusht/image"), 3)
    reads = _RecorderMethod(None, DataInfo(obs_dim=2, action_dim=2, images=(("image", (96, 96, 3)),)), None)
    _Recorder.seen = []
    result = evaluate(reads, suite, episodes_per_task=2, n_envs=2, progress=False)
    assert result["episodes_per_task"] == 2 and all(e["steps"] == 3 for e in result["episodes"])
    seen = _Recorder.seen
    assert len(seen) == 6 and all(set(o) == {"obs", "image"} and o["image"].shape == (96, 96, 3) for o in seen)
    env = PushTEnv("image")
    alone, _ = env.reset(seed=suite.test_seed_start + 1)  # the second episode ran in the second slot
    np.testing.assert_array_equal(seen[1]["image"], alone["image"])
    np.testing.assert_array_equal(seen[1]["obs"], alone["obs"])

    _Recorder.seen = []
    evaluate(_RecorderMethod(None, DataInfo(obs_dim=2, action_dim=2), None), suite, episodes_per_task=1, progress=False)
    assert all(isinstance(o, np.ndarray) and o.shape == (2,) for o in _Recorder.seen)


def test_evaluation_refuses_a_suite_without_the_frames_the_model_reads():
    from lwd.evaluation.evaluate import check_compatible

    model = _RecorderMethod(None, DataInfo(obs_dim=2, action_dim=2, images=(("image", (96, 96, 3)),)), None)
    on_state = _RecorderMethod(None, DataInfo(5, 2, images=model.info.images), None)
    with pytest.raises(ValueError, match=r"reads camera frames 'image' but pusht/state gives none"):
        check_compatible(on_state, make_suite("pusht/state"))
    small = _RecorderMethod(None, DataInfo(2, 2, images=(("image", (84, 84, 3)),)), None)
    with pytest.raises(ValueError, match=r"reads 'image' frames of \(84, 84, 3\) but pusht/image gives \(96, 96, 3\)"):
        check_compatible(small, make_suite("pusht/image"))


def test_observation_noise_on_an_image_suite_noises_the_low_dim_part_and_passes_frames():
    from lwd.envs.perturb import apply_perturbation
    from lwd.envs.pusht import PushTEnv

    noisy, clean = apply_perturbation(PushTEnv("image"), "obs-noise:3"), PushTEnv("image")
    a, _ = noisy.reset(seed=1)
    b, _ = clean.reset(seed=1)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert 0 < np.abs(a["obs"] - b["obs"]).max() < 20


def test_obs_history_stacks_dict_observations_per_key():
    history = ObsHistory(2)
    history.push({"obs": np.array([1.0]), "image": np.full((2, 2, 3), 1, np.uint8)})
    stacked = history.stacked()
    assert stacked["obs"].shape == (2, 1) and stacked["image"].shape == (2, 2, 2, 3)
    history.push({"obs": np.array([2.0]), "image": np.full((2, 2, 3), 2, np.uint8)})
    np.testing.assert_array_equal(history.stacked()["image"][:, 0, 0, 0], [1, 2])
    plain = ObsHistory(2)
    plain.push(np.array([3.0, 4.0]))
    assert plain.stacked().shape == (2, 2)


def test_robomimic_image_suites_name_their_camera_and_refuse_a_display_only_gl(monkeypatch):
    pytest.importorskip("robosuite")
    from lwd.envs.robomimic import RobomimicEnv

    suite = make_suite("robomimic/lift/image")
    assert (suite.obs_dim, suite.images) == (9, (("agentview_image", (84, 84, 3)),))
    with pytest.raises(ValueError, match="use robomimic/lift or robomimic/lift/image"):
        make_suite("robomimic/lift/depth")
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    with pytest.raises(RuntimeError, match="needs MUJOCO_GL=egl .*but MUJOCO_GL='glfw'"):
        RobomimicEnv("lift", cameras=("agentview",))


def test_robomimic_lift_image_observes_proprioception_and_an_upright_agentview_frame(lift_env):
    from lwd.envs.robomimic import RobomimicEnv

    env = RobomimicEnv("lift", cameras=("agentview",))
    try:
        obs, _ = env.reset(seed=3)
        low_dim, _ = lift_env.reset(seed=3)
        np.testing.assert_array_equal(obs["obs"], low_dim[10:])  # eef pos, eef quat, gripper qpos
        frame = obs["agentview_image"]
        assert frame.dtype == np.uint8 and frame.shape == (84, 84, 3)
        # upright: the robot's dark base at the top of the picture, the light table below it
        assert frame[:20].mean() < frame[-20:].mean()
    finally:
        env.close()


def test_image_demos_go_to_disk_episode_by_episode_and_save_the_same_dataset(tmp_path):
    from lwd.data import Episodes
    from lwd.demos import collect_demos, write_demos
    from lwd.envs.pusht import PushTEnv

    suite = dataclasses.replace(make_suite("pusht/image"),  # 4-step episodes, kept though unfinished
                                make_task_env=lambda task, **kw: PushTEnv("image", **{**kw, "max_episode_steps": 4}))
    in_memory = collect_demos(suite, 2, keep_failures=True, progress=False)
    spooled = collect_demos(suite, 2, keep_failures=True, progress=False, frame_store=tmp_path / "spool.zarr")
    assert in_memory.frames["image"].in_memory and not spooled.frames["image"].in_memory  # read from the spool
    assert spooled.frames["image"].equal(in_memory.frames["image"]) and spooled.attrs["seeds"] == [0, 1]

    saved = write_demos(suite, tmp_path / "demos.zarr", 2, keep_failures=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.zarr", "spool.zarr"]  # write_demos' own spool is gone
    again = Episodes.load(tmp_path / "demos.zarr")
    assert again.frames["image"].equal(in_memory.frames["image"]) and saved.num_steps == in_memory.num_steps == 8
    np.testing.assert_array_equal(again.data["action"], in_memory.data["action"])
