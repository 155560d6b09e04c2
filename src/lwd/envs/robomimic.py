"""Robomimic's Lift / Can / Square tasks on robosuite 1.5, as seeded single-task gymnasium envs.

Robomimic's low-dim datasets use four observation keys, concatenated here in this documented
order (``OBS_KEYS``)::

    object               Lift 10: cube pos 3, cube quat 4, gripper-to-cube pos 3
                         Can/Square 14: object-to-eef pos 3, object-to-eef quat 4, object pos 3,
                         object quat 4 (robosuite 1.5's order)
    robot0_eef_pos       3   position of the grip site (between the fingertips), world frame
    robot0_eef_quat      4   orientation of the hand, (x, y, z, w)
    robot0_gripper_qpos  2   finger joint positions

so the observation is 19-d (Lift) or 23-d (Can, Square), float32. robosuite calls the object key
``object-state``; robomimic calls it ``object``. Quaternions are (x, y, z, w).

robosuite 1.5 computes the Can/Square object-to-eef terms from a cache of the hand pose, which
is empty right after a reset (its first observation has zeros there); `reset` therefore computes
the observation a second time, so every observation, the first included, is consistent.

An episode is identified by (task, seed): ``reset(seed=s)`` reseeds robosuite's own generator
(every placement sampler and the robot's initial joint noise draw from ``env.rng``), so the same
seed gives the same initial state whatever ran before in this env, and in every process (the
model itself is built from a fixed seed: Lift's cube size is drawn at build time). Resets are soft
(``hard_reset=False``): robosuite keeps the compiled model, so a reset costs milliseconds instead
of ~0.75 s.

Image observations (``cameras``, the suites ``robomimic/<task>/image``): robomimic's image
datasets pair camera frames with proprioception only, so the observation is a dict with the keys
of one episode-store step, ``{"obs": robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos (9-d),
"agentview_image": (84, 84, 3) uint8}`` (robosuite names a camera's frames ``<camera>_image``;
84 x 84 is robomimic's and Diffusion Policy's size). Frames are flipped to row 0 at the top, as
robomimic's ``EnvRobosuite`` flips MuJoCo's bottom-up images. Rendering is offscreen: robosuite
needs an OpenGL backend, ``MUJOCO_GL=egl`` (its default on Linux) or ``osmesa``; any other
setting, or a backend that fails to start, is refused with a message that says so. It is slow in
software: ~0.1 s a frame on one CPU core here, so an image step costs ~10x a low-dim one.

Success protocol (as Metaworld's): an episode succeeds if the env's own ``_check_success()`` is
true at any step within 400; by default the env terminates at the first success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lwd.envs.base import SeededTaskEnv
from lwd.optional import require

TASKS: tuple[str, ...] = ("lift", "can", "square")
#: robosuite environment class of each task.
ROBOSUITE_ENVS: dict[str, str] = {"lift": "Lift", "can": "PickPlaceCan", "square": "NutAssemblySquare"}
#: robomimic's low-dim observation keys, in the order they are concatenated.
OBS_KEYS: tuple[str, ...] = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
OBS_DIMS: dict[str, int] = {"lift": 19, "can": 23, "square": 23}
#: Proprioception beside camera frames (robomimic's image datasets): the robot keys of OBS_KEYS.
PROPRIO_KEYS: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
PROPRIO_DIM = 9
#: Cameras of the image suites, and their frame side in pixels.
IMAGE_CAMERAS: tuple[str, ...] = ("agentview",)
IMAGE_SIZE = 84
#: MUJOCO_GL values that render offscreen without a display.
OFFSCREEN_GL = ("egl", "osmesa")
ACTION_DIM = 7
MAX_EPISODE_STEPS = 400
CONTROL_FREQ = 20
#: Seed of the model build (see `RobomimicEnv._make_kwargs`); fixed, so every process gets one model.
MODEL_SEED = 0
_OBJECT_DIMS = {"lift": 10, "can": 14, "square": 14}
#: robomimic key -> robosuite key (only the object key differs).
_ROBOSUITE_KEY = {"object": "object-state"}
#: Name of the task object's body / free joint in each robosuite env.
_OBJECT_BODY = {"lift": "cube_main", "can": "Can_main", "square": "SquareNut_main"}
_OBJECT_JOINT = {"lift": "cube_joint0", "can": "Can_joint0", "square": "SquareNut_joint0"}


def obs_key_dims(task: str) -> dict[str, int]:
    """robomimic obs key -> its width for `task`, in ``OBS_KEYS`` order (sums to ``OBS_DIMS[task]``)."""
    _check_task(task)
    return {"object": _OBJECT_DIMS[task], "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def image_key(camera: str) -> str:
    """The image key of a robosuite camera's frames (robosuite's and robomimic's name), e.g. "agentview_image"."""
    return f"{camera}_image"


def _check_offscreen_gl() -> None:
    """Refuse a MUJOCO_GL that cannot render without a display, before robosuite tries it."""
    import os

    value = os.environ.get("MUJOCO_GL")
    if value is not None and value.strip().lower() not in OFFSCREEN_GL:
        raise RuntimeError(f"robomimic image observations render offscreen, which needs MUJOCO_GL=egl (or osmesa), "
                           f"but MUJOCO_GL={value!r}; start lwd with MUJOCO_GL=egl")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown robomimic task {task!r}; known tasks: {', '.join(TASKS)}")


def _import_robosuite() -> Any:
    _quiet_robosuite()
    return require("robosuite", "robomimic")


def _quiet_robosuite() -> None:
    """Keep robosuite's import from printing six lines on every command.

    robosuite reads its settings from an optional module `robosuite.macros_private` and, when there
    is none, warns three times and logs at INFO. Unless the user has their own (a
    macros_private.py in robosuite's folder), lwd supplies one that keeps every default and sets
    robosuite's console log level to ERROR, so errors still show."""
    import importlib.util
    import sys
    import types

    if "robosuite" in sys.modules or "robosuite.macros_private" in sys.modules:
        return
    spec = importlib.util.find_spec("robosuite")
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders or any((Path(folder) / "macros_private.py").exists() for folder in folders):
        return
    private = types.ModuleType("robosuite.macros_private")
    private.CONSOLE_LOGGING_LEVEL = "ERROR"  # type: ignore[attr-defined]
    sys.modules["robosuite.macros_private"] = private


class RobomimicEnv(SeededTaskEnv):
    """One robomimic task (Panda, OSC_POSE deltas at 20 Hz); ``reset(seed=s)`` is deterministic in `s`.

    Actions (7,) in [-1, 1]: end-effector position delta (x 5 cm), rotation delta as a world-frame
    axis-angle (x 0.5 rad), gripper (-1 open, +1 close). They are clipped to the box.

    ``info`` (on reset and every step) holds:

    - ``success`` (bool, the env's own ``_check_success()``) and ``score`` (float(success));
    - ``sim_state``: float64 ``sim.get_state().flatten()`` (time, qpos, qvel) at the returned obs,
      robomimic's ``states`` layout, so a recorded episode can be replayed/exported exactly
      (MuJoCo computes positions before integrating, so the obs lags this state by one 2 ms
      physics substep: up to ~0.2 mm at full speed; restoring a state and re-observing differs
      by that much);
    - privileged state for scripted experts (learned policies never read it): ``object_pos``,
      ``object_quat`` (x, y, z, w) of the task object, ``target_pos`` (Lift: a point 10 cm above
      the table centre; Can: centre of the can's target bin quadrant at the bin floor; Square: the
      square peg's base), ``eef_pos``, ``eef_quat``, ``gripper_qpos``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str,
        terminate_on_success: bool = True,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
        cameras: tuple[str, ...] = (),
    ) -> None:
        """cameras: robosuite cameras whose frames join the observation (then a dict, see the module
        docstring); empty: robomimic's low-dim observation array."""
        _check_task(task)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.cameras = tuple(cameras)
        if self.cameras:
            _check_offscreen_gl()
        super().__init__(PROPRIO_DIM if self.cameras else OBS_DIMS[task], -1.0, 1.0, ACTION_DIM, terminate_on_success,
                         max_episode_steps, render_mode)
        self.task = task
        try:  # with MUJOCO_GL=osmesa and no OSMesa, even importing robosuite fails (in PyOpenGL)
            self._env_kwargs = self._make_kwargs(render_mode, self.cameras)
            self._env = _import_robosuite().make(ROBOSUITE_ENVS[task], **self._env_kwargs)
        except Exception as err:
            if not self.cameras or isinstance(err, ImportError):  # ImportError: robosuite itself is missing
                raise
            import os

            raise RuntimeError(f"robosuite could not start offscreen rendering for camera frames "
                               f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {type(err).__name__}: {err}; "
                               "install EGL (e.g. libegl1) or OSMesa and start lwd with MUJOCO_GL=egl or osmesa") from err
        if self.cameras:
            self.observation_space = gym.spaces.Dict({
                "obs": self.observation_space,
                **{image_key(c): gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8) for c in self.cameras},
            })
        sim = self._env.sim
        self._object_body = sim.model.body_name2id(_OBJECT_BODY[task])
        self._object_qpos = sim.model.get_joint_qpos_addr(_OBJECT_JOINT[task])[0]
        self._object_qvel = sim.model.get_joint_qvel_addr(_OBJECT_JOINT[task])[0]
        self._target_pos = self._compute_target()
        self._raw: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _make_kwargs(render_mode: str | None, cameras: tuple[str, ...] = ()) -> dict[str, Any]:
        """robosuite.make keyword arguments; JSON-serialisable, so `env_args()` can record them."""
        suite = _import_robosuite()
        controller = suite.load_composite_controller_config(robot="Panda")
        offscreen = render_mode == "rgb_array" or bool(cameras)
        camera_kwargs: dict[str, Any] = {}
        if cameras:
            camera_kwargs = {"camera_names": list(cameras), "camera_heights": IMAGE_SIZE, "camera_widths": IMAGE_SIZE,
                             "camera_depths": False}
        return {
            "robots": ["Panda"],
            "controller_configs": controller,
            "has_renderer": False,
            "has_offscreen_renderer": offscreen,
            "use_camera_obs": bool(cameras),
            **camera_kwargs,
            "use_object_obs": True,
            "control_freq": CONTROL_FREQ,
            "horizon": MAX_EPISODE_STEPS,  # unused: ignore_done=True, this class cuts the episode
            "ignore_done": True,
            "hard_reset": False,
            # Seeds robosuite's generator for building the model: Lift draws its cube's size
            # (2.0-2.2 cm) there, so without a fixed seed every process would get another cube.
            # reset(seed=...) reseeds the same generator for each episode.
            "seed": MODEL_SEED,
            "reward_shaping": False,
            "render_camera": "agentview",
        }

    def _compute_target(self) -> np.ndarray:
        env, sim = self._env, self._env.sim
        if self.task == "can":
            # robosuite's PickPlace.not_in_bin: the can (object id 3) goes into the quadrant
            # [bin2_x, bin2_x + size_x/2] x [bin2_y, bin2_y + size_y/2] of the target bin.
            x = env.bin2_pos[0] + env.bin_size[0] / 4.0
            y = env.bin2_pos[1] + env.bin_size[1] / 4.0
            return np.array([x, y, env.bin2_pos[2]], np.float64)
        if self.task == "square":
            return np.array(sim.data.body_xpos[env.peg1_body_id], np.float64)
        table = np.asarray(env.model.mujoco_arena.table_offset, np.float64)
        return table + np.array([0.0, 0.0, 0.10])

    # ------------------------------------------------------------------ gym API

    def _reset(self, seed: int, options: dict | None) -> tuple[np.ndarray, dict]:
        # The placement samplers hold a reference to env.rng (created once, at model load), so
        # the generator must be reseeded in place rather than replaced.
        self._env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self._env.reset()
        # Second pass: the object-to-eef observables read the hand-pose cache the first pass filled.
        self._raw = self._env._get_observations(force_update=True)
        if self.task == "square":  # the peg is static, but read it from the live sim anyway
            self._target_pos = self._compute_target()
        return self._obs(), self._info()

    def _advance(self, action: np.ndarray) -> tuple[np.ndarray, float, dict]:
        self._raw, _, _, _ = self._env.step(action)
        info = self._info()
        return self._obs(), float(info["success"]), info

    def _obs(self) -> np.ndarray | dict[str, np.ndarray]:
        keys = PROPRIO_KEYS if self.cameras else OBS_KEYS
        parts = [np.asarray(self._raw[_ROBOSUITE_KEY.get(k, k)], np.float32).ravel() for k in keys]
        if not self.cameras:
            return np.concatenate(parts)
        frames = {image_key(c): np.ascontiguousarray(self._raw[image_key(c)][::-1], dtype=np.uint8) for c in self.cameras}
        return {"obs": np.concatenate(parts), **frames}

    def _info(self) -> dict[str, Any]:
        success = bool(self._env._check_success())
        sim = self._env.sim
        return {
            "success": success,
            "score": float(success),
            "sim_state": np.asarray(sim.get_state().flatten(), np.float64),
            "object_pos": np.array(sim.data.body_xpos[self._object_body], np.float64),
            "object_quat": _wxyz_to_xyzw(sim.data.body_xquat[self._object_body]),
            "target_pos": self._target_pos.copy(),
            "eef_pos": np.asarray(self._raw["robot0_eef_pos"], np.float64).copy(),
            "eef_quat": np.asarray(self._raw["robot0_eef_quat"], np.float64).copy(),
            "gripper_qpos": np.asarray(self._raw["robot0_gripper_qpos"], np.float64).copy(),
        }

    # ------------------------------------------------------------------ extras

    PUSH_NAME = "object-push"
    PUSH_UNIT = "centimetres"

    def push_object(self, rng: np.random.Generator, magnitude: float) -> None:
        """Displace the task object horizontally by `magnitude` centimetres in a random direction.

        The object's free joint is translated in the table plane (direction uniform on the
        circle), keeping its height, orientation and velocity, and the sim is re-forwarded so
        every derived quantity is consistent. A held object is knocked out of the gripper, and a
        push into the robot or a wall is resolved by MuJoCo's contact forces on the next step.
        The observation changes only at the next ``step``, as the policy would perceive a push.
        """
        angle = rng.uniform(0.0, 2.0 * np.pi)
        delta = magnitude / 100.0 * np.array([np.cos(angle), np.sin(angle)])
        sim = self._env.sim
        sim.data.qpos[self._object_qpos : self._object_qpos + 2] += delta
        sim.forward()

    def object_position(self) -> np.ndarray:
        """World position (m) of the task object (for tests and diagnostics)."""
        return np.array(self._env.sim.data.body_xpos[self._object_body], np.float64)

    def env_args(self) -> dict[str, Any]:
        """robomimic's ``data.attrs["env_args"]`` (JSON) for this env: how to rebuild it."""
        robosuite = _import_robosuite()
        return {
            "env_name": ROBOSUITE_ENVS[self.task],
            "env_version": robosuite.__version__,
            "type": 1,  # robomimic EnvType.ROBOSUITE_TYPE
            "env_kwargs": {k: v for k, v in self._env_kwargs.items() if k != "render_camera"},
        }

    def render(self) -> np.ndarray | None:
        """An offscreen RGB frame from robomimic's ``agentview`` camera (render_mode='rgb_array')."""
        if self.render_mode != "rgb_array":
            return None
        frame = self._env.sim.render(camera_name="agentview", width=256, height=256)
        return np.ascontiguousarray(frame[::-1])  # MuJoCo's image origin is bottom-left


def _wxyz_to_xyzw(quat: np.ndarray) -> np.ndarray:
    q = np.asarray(quat, np.float64)
    return np.array([q[1], q[2], q[3], q[0]])
