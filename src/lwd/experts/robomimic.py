"""Scripted waypoint experts for robomimic's Lift, Can and Square (robosuite 1.5, OSC_POSE deltas).

Each expert is a small state machine (approach above the object with the hand's yaw aligned to a
grasp axis, descend, close, lift, carry, lower/insert, release) that reads privileged state from
the env's ``info`` (object pose, target, hand pose; see :class:`lwd.envs.robomimic.RobomimicEnv`).

Facts of the controller it relies on (measured, see ENV-NOTES): an action of 1 asks for a 5 cm /
0.5 rad goal offset; the hand moves at most ~1.25 cm per 20 Hz step and lags 2-3 steps; the
gripper takes 10-12 steps to close. Rotation actions are world-frame axis-angles; "pointing down"
is the hand orientation ``Rz(yaw) @ diag(1, -1, -1)``, whose fingers close along
``(sin yaw, -cos yaw, 0)``.

Diversity: approach heights, grasp offsets, speeds and drop points are drawn per episode from an
RNG seeded by ``[seed, salt]``, so demonstrations are not one trajectory replayed; several choices
(grasp branch, nut orientation) are discrete functions of the object's yaw, so the data is
genuinely multimodal near those boundaries.

Styles (Lift and Can, `STYLES`, chosen per episode by `lwd demos --styles`):
- "waypoint" (the default): the expert above, exactly;
- Lift "other-grasp": closes across the other pair of the cube's faces, so the hand turns 45-90 deg
  before the grasp instead of 0-45 deg (the grasp yaw differs from "waypoint"'s by 90 deg);
- Can "side-grasp": the hand turns to a yaw of 1.0-1.3 rad either way (side drawn per episode)
  before the grasp, where "waypoint" keeps within 0.4 rad of its start: the fingers close on the
  can from another side, and the wrist turns through the approach;
- "slow" (both): an operator-like careful profile, drawn per episode on top of the same draws:
  speed 0.35-0.5 instead of 0.7-1.0 and a higher hover (12-16 cm instead of 5-10 cm) before
  descending.
Style draws come after the shared ones, so every other parameter of a seed stays the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("lift", "can", "square")
"""The tasks this expert has a state machine for."""
LIFT_STYLES = ("waypoint", "other-grasp", "slow")
"""Lift's styles, in a fixed order (a dataset's integer `style` ids index this); see the module docstring."""
CAN_STYLES = ("waypoint", "side-grasp", "slow")
"""Can's styles, in a fixed order; see the module docstring."""
STYLES: dict[str, tuple[str, ...]] = {"lift": LIFT_STYLES, "can": CAN_STYLES}
"""Each task's styles (a task not named here has only "waypoint")."""


_POS_SCALE = 0.05  # metres of goal offset per unit of position action
_ROT_SCALE = 0.5  # radians of goal offset per unit of rotation action
_OPEN, _CLOSE = -1.0, 1.0
_HALF_PI = np.pi / 2.0


def _quat_to_mat(q_xyzw: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q_xyzw, np.float64) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (angle in [0, pi])."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if angle > np.pi - 1e-4:  # axis from the symmetric part near pi
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        axis[1] *= np.sign(r[0, 1] + r[1, 0]) or 1.0
        axis[2] *= np.sign(r[0, 2] + r[2, 0]) or 1.0
        return axis * angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


def _yaw_of(q_xyzw: np.ndarray) -> float:
    """Yaw of a body's x axis in the table plane."""
    r = _quat_to_mat(q_xyzw)
    return float(np.arctan2(r[1, 0], r[0, 0]))


def _down(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, -1.0])


def _hand_yaw(eef_quat: np.ndarray) -> float:
    """Yaw of a (roughly) downward hand: the inverse of `_down`."""
    r = _quat_to_mat(eef_quat)
    return float(np.arctan2(r[1, 0], r[0, 0]))


class RobomimicExpert:
    """Waypoint state machine for one robomimic task; `act` returns a float32 (7,) action in [-1, 1]."""

    def __init__(self, task: str, salt: int = 0, style: str = "waypoint") -> None:
        if task not in TASKS:
            raise ValueError(f"unknown robomimic task {task!r}; this expert knows: {', '.join(TASKS)}")
        if style != "waypoint" and style not in STYLES.get(task, ()):
            raise ValueError(f"unknown {task} expert style {style!r}; known: "
                             + (", ".join(STYLES[task]) if task in STYLES else "waypoint only"))
        self.task = task
        self.style = style
        self.salt = int(salt)
        self.reset(0)

    # ------------------------------------------------------------------ protocol

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng([int(seed), self.salt])
        self._phase = "start"
        self._t = 0  # steps since the episode started
        self._phase_t = 0  # steps spent in the current phase
        self._p: dict[str, Any] = {}  # per-episode parameters, drawn at the first act
        self._mem: dict[str, Any] = {}  # values fixed during the episode (grasp yaw, ...)
        self._integral = np.zeros(3)  # integral of the position error (see `_move`)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        del obs  # privileged state comes from info
        if self._phase == "start":
            self._draw_params()
            self._phase = "approach"
        action = {"lift": self._act_lift, "can": self._act_can, "square": self._act_square}[self.task](info)
        self._t += 1
        self._phase_t += 1
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    @property
    def phase(self) -> str:
        """Current state of the machine (for debugging and tests)."""
        return self._phase

    # ------------------------------------------------------------------ helpers

    def _goto(self, phase: str) -> None:
        self._phase = phase
        self._phase_t = 0
        self._integral = np.zeros(3)

    def _move(
        self,
        info: dict[str, Any],
        target: np.ndarray,
        yaw: float,
        grip: float,
        speed: float = 1.0,
        gain: float = 1.0,
        integrate: bool = False,
    ) -> np.ndarray:
        """Action that moves the grip site towards `target` with the hand pointing down at `yaw`.

        `integrate` adds a lateral integral term (reset at each phase change): near the edge of the
        workspace the OSC controller settles a few mm short of its goal, more than the Square
        grasp and insertion tolerate.
        """
        error = np.asarray(target, np.float64) - info["eef_pos"]
        if integrate:
            if self._phase_t == 0:
                self._integral = np.zeros(3)
            self._integral[:2] += 0.15 * error[:2]  # lateral only: height errors come from contacts
            norm = np.linalg.norm(self._integral)
            if norm > 0.02:
                self._integral *= 0.02 / norm
            error = error + self._integral
        pos = error / _POS_SCALE * gain
        norm = np.linalg.norm(pos)
        if norm > speed:
            pos *= speed / norm
        r_cur = _quat_to_mat(info["eef_quat"])
        rot = _rotvec(_down(yaw) @ r_cur.T) / _ROT_SCALE
        rot_norm = np.linalg.norm(rot)
        if rot_norm > 1.0:
            rot /= rot_norm
        return np.concatenate([pos, rot, [grip]])

    def _draw_params(self) -> None:
        u = self._rng.uniform
        self._p = {
            "speed": u(0.7, 1.0),
            "approach_h": u(0.05, 0.10),
            "lift_h": u(0.10, 0.16),
            "close_steps": int(self._rng.integers(11, 15)),
        }
        if self.task == "lift":
            self._p.update(grasp_dz=u(-0.008, 0.004), grasp_dxy=u(-0.006, 0.006, size=2))
            if self.style == "slow":  # drawn after the shared draws, so those stay the same per seed
                self._p.update(speed=u(0.35, 0.5), approach_h=u(0.12, 0.16))
        elif self.task == "can":
            self._p.update(
                grasp_dz=u(0.015, 0.03),
                grasp_dxy=u(-0.004, 0.004, size=2),
                carry_z=u(1.02, 1.08),
                drop_xy=np.array([0.155, 0.345]) + u(-0.012, 0.012, size=2),
                drop_z=u(0.90, 0.93),
                yaw=u(-0.4, 0.4),
            )
            if self.style == "side-grasp":
                self._p.update(yaw=u(1.0, 1.3) * (1.0 if self._rng.random() < 0.5 else -1.0))
            elif self.style == "slow":
                self._p.update(speed=u(0.35, 0.5), approach_h=u(0.12, 0.16))
        else:
            self._p.update(
                handle_d=u(0.060, 0.068),
                carry_z=u(1.00, 1.03),
            )

    def _yaw_error_ok(self, info: dict[str, Any], yaw: float, tol: float) -> bool:
        return abs(_wrap(_hand_yaw(info["eef_quat"]) - yaw)) < tol

    def _descend_and_close(self, info: dict[str, Any], grasp: np.ndarray, yaw: float) -> np.ndarray:
        """Lift and Can: lower onto `grasp` with the gripper open, then close for close_steps and lift."""
        eef = info["eef_pos"]
        if self._phase == "descend":
            if np.linalg.norm(grasp - eef) < 0.008 or self._phase_t > 40:
                self._goto("close")
            return self._move(info, grasp, yaw, _OPEN, self._p["speed"])
        if self._phase_t >= self._p["close_steps"]:
            self._mem["lift_from"] = eef.copy()  # where Lift's lift starts from
            self._goto("lift")
        return self._move(info, grasp, yaw, _CLOSE, self._p["speed"])

    # ------------------------------------------------------------------ Lift

    def _act_lift(self, info: dict[str, Any]) -> np.ndarray:
        p, cube, eef = self._p, info["object_pos"], info["eef_pos"]
        if "yaw" not in self._mem:
            # The cube is symmetric under 90 deg turns: close across the face nearest the hand's yaw.
            theta = _yaw_of(info["object_quat"])
            hand = _hand_yaw(info["eef_quat"])
            turn = _wrap(theta - hand + np.pi / 4) % _HALF_PI - np.pi / 4  # in [-45, 45) deg
            if self.style == "other-grasp":  # the other face pair: turn 45-90 deg the nearer way
                turn += _HALF_PI if turn < 0 else -_HALF_PI
            self._mem["yaw"] = hand + turn
        yaw = self._mem["yaw"]
        grasp = cube + np.array([p["grasp_dxy"][0], p["grasp_dxy"][1], p["grasp_dz"]])
        if self._phase == "approach":
            target = grasp + np.array([0.0, 0.0, p["approach_h"]])
            if np.linalg.norm((target - eef)[:2]) < 0.01 and abs(target[2] - eef[2]) < 0.03 and self._yaw_error_ok(info, yaw, 0.08):
                self._goto("descend")
            return self._move(info, target, yaw, _OPEN, p["speed"])
        if self._phase in ("descend", "close"):
            return self._descend_and_close(info, grasp, yaw)
        # lift; if the fingers closed on nothing (missed or slipped), open and start over
        if self._phase_t > 15 and info["gripper_qpos"][0] - info["gripper_qpos"][1] < 0.01:
            del self._mem["yaw"]
            self._goto("approach")
        target = self._mem["lift_from"] + np.array([0.0, 0.0, p["lift_h"]])
        return self._move(info, target, yaw, _CLOSE, p["speed"])

    # ------------------------------------------------------------------ Can

    def _act_can(self, info: dict[str, Any]) -> np.ndarray:
        p, can, eef = self._p, info["object_pos"], info["eef_pos"]
        yaw = p["yaw"]
        grasp = can + np.array([p["grasp_dxy"][0], p["grasp_dxy"][1], p["grasp_dz"]])
        width = info["gripper_qpos"][0] - info["gripper_qpos"][1]
        if self._phase == "approach":
            if self._t < 8:  # objects spawn in the air and settle in ~10 steps
                return self._move(info, eef + np.array([0.0, 0.0, 0.02]), yaw, _OPEN, p["speed"])
            target = grasp + np.array([0.0, 0.0, p["approach_h"]])
            target[2] = max(target[2], eef[2] - 0.05) if np.linalg.norm((grasp - eef)[:2]) > 0.05 else target[2]
            if np.linalg.norm((target - eef)[:2]) < 0.008 and abs(target[2] - eef[2]) < 0.03 and self._yaw_error_ok(info, yaw, 0.1):
                self._goto("descend")
            return self._move(info, target, yaw, _OPEN, p["speed"])
        if self._phase in ("descend", "close"):
            return self._descend_and_close(info, grasp, yaw)
        if self._phase in ("lift", "carry", "lower"):
            if width < 0.02 and self._phase_t > 5:  # dropped: start over
                self._goto("recover")
                return self._move(info, eef + np.array([0, 0, 0.05]), yaw, _OPEN)
        if self._phase == "lift":
            target = np.array([eef[0], eef[1], p["carry_z"]])
            target[:2] = grasp[:2]
            if eef[2] > p["carry_z"] - 0.03:
                self._goto("carry")
            return self._move(info, target, yaw, _CLOSE, p["speed"])
        if self._phase == "carry":
            # Servo the can (not the hand) over the drop point.
            offset = eef - can
            target = np.array([p["drop_xy"][0], p["drop_xy"][1], p["carry_z"]])
            target[:2] += offset[:2]
            if np.linalg.norm((target - eef)[:2]) < 0.015:
                self._goto("lower")
            return self._move(info, target, yaw, _CLOSE, p["speed"])
        if self._phase == "lower":
            offset = eef - can
            target = np.array([p["drop_xy"][0] + offset[0], p["drop_xy"][1] + offset[1], p["drop_z"] + offset[2]])
            if can[2] < p["drop_z"] + 0.01 or self._phase_t > 40:
                self._mem["release_at"] = eef.copy()
                self._goto("release")
            return self._move(info, target, yaw, _CLOSE, p["speed"] * 0.8)
        if self._phase == "release":
            target = self._mem["release_at"]
            if self._phase_t >= 8:
                self._goto("retreat")
            return self._move(info, target, yaw, _OPEN, p["speed"])
        if self._phase == "recover":
            if self._phase_t > 10:
                self._goto("approach")
            return self._move(info, np.array([eef[0], eef[1], max(eef[2], 1.0)]), yaw, _OPEN)
        # retreat: straight up, away from the can
        target = self._mem["release_at"] + np.array([0.0, 0.0, 0.12])
        return self._move(info, target, yaw, _OPEN, p["speed"])

    # ------------------------------------------------------------------ Square

    def _square_plan(self, info: dict[str, Any]) -> None:
        """Choose the grasp yaw (one of two 180-deg branches) and the nut's final yaw over the peg.

        The hole is square, so the nut fits the peg at any multiple of 90 deg; handle pointing +x
        puts the hand out of reach, and big wrist turns hit joint limits, so take the reachable
        combination with the smallest total wrist motion.
        """
        theta = _yaw_of(info["object_quat"])  # handle direction
        best: tuple[float, float, float] | None = None
        for psi in (theta, theta + np.pi):
            psi = _wrap(psi)
            for phi in (np.pi / 2, np.pi, -np.pi / 2):
                delta = _wrap(phi - theta)
                final = psi + delta
                cost = abs(delta) + 0.5 * abs(psi) + 0.5 * abs(final) + 10.0 * (abs(final) > 2.2)
                if best is None or cost < best[0]:
                    best = (cost, psi, phi)
        assert best is not None
        self._mem.update(grasp_yaw=best[1], nut_yaw=best[2])

    def _act_square(self, info: dict[str, Any]) -> np.ndarray:
        p, nut, eef = self._p, info["object_pos"], info["eef_pos"]
        if self._t < 8:  # objects spawn in the air and settle in ~10 steps
            return self._move(info, eef + np.array([0.0, 0.0, 0.01]), _hand_yaw(info["eef_quat"]), _OPEN)
        if "grasp_yaw" not in self._mem:
            self._square_plan(info)
        theta = _yaw_of(info["object_quat"])
        handle = np.array([np.cos(theta), np.sin(theta), 0.0])
        grasp = nut + p["handle_d"] * handle
        grasp[2] = max(nut[2] + 0.002, 0.832)
        width = info["gripper_qpos"][0] - info["gripper_qpos"][1]
        peg = info["target_pos"]
        if self._phase == "approach":
            yaw = self._mem["grasp_yaw"]
            target = grasp + np.array([0.0, 0.0, p["approach_h"]])
            if np.linalg.norm((grasp - eef)[:2]) > 0.03:
                target[2] = max(target[2], eef[2] - 0.02)
            lateral = np.linalg.norm((grasp - eef)[:2])
            if lateral < 0.004 and abs(target[2] - eef[2]) < 0.02 and self._yaw_error_ok(info, yaw, 0.05):
                self._goto("descend")
            return self._move(info, target, yaw, _OPEN, p["speed"], integrate=lateral < 0.02)
        if self._phase == "descend":
            yaw = self._mem["grasp_yaw"]
            lateral = np.linalg.norm((grasp - eef)[:2])
            target = grasp.copy()
            if lateral > 0.006:  # hold height until the fingers are over the handle again
                target[2] = eef[2]
            if np.linalg.norm(grasp - eef) < 0.006 or (self._phase_t > 40 and lateral < 0.006):
                self._mem["grasp_at"] = grasp.copy()
                self._goto("close")
            return self._move(info, target, yaw, _OPEN, p["speed"] * 0.8, integrate=True)
        if self._phase == "close":
            yaw = self._mem["grasp_yaw"]
            if self._phase_t >= p["close_steps"]:
                # A good grip on the 3.2 cm handle leaves each finger ~0.016 open.
                if 0.024 < width < 0.04:
                    self._mem["hold_dz"] = eef[2] - nut[2]
                    self._goto("lift")
                else:
                    self._goto("regrasp")
            return self._move(info, self._mem["grasp_at"], yaw, _CLOSE)
        if self._phase == "regrasp":
            if self._phase_t > 10:
                self._mem.pop("grasp_yaw")
                self._goto("approach")
            return self._move(info, eef + np.array([0.0, 0.0, 0.05]), _hand_yaw(info["eef_quat"]), _OPEN)
        if self._phase in ("lift", "carry", "insert") and width < 0.02:
            self._goto("regrasp")  # the nut slipped out
            return self._move(info, eef + np.array([0.0, 0.0, 0.05]), _hand_yaw(info["eef_quat"]), _OPEN)
        # From here on, servo the nut (not the hand): hand target = hand + (nut goal - nut).
        hand_yaw = _hand_yaw(info["eef_quat"])
        yaw_err = _wrap(self._mem["nut_yaw"] - theta)
        if self._phase == "lift":
            target = np.array([eef[0], eef[1], p["carry_z"] + self._mem["hold_dz"]])
            yaw = hand_yaw + (yaw_err if nut[2] > 0.9 else 0.0)
            if nut[2] > p["carry_z"] - 0.02:
                self._mem["aligned"] = 0
                self._goto("carry")
            return self._move(info, target, yaw, _CLOSE, p["speed"])
        if self._phase == "carry":
            goal = np.array([peg[0], peg[1], p["carry_z"]])
            target = eef + (goal - nut)
            err = np.linalg.norm((goal - nut)[:2])
            self._mem["aligned"] = self._mem["aligned"] + 1 if (err < 0.004 and abs(yaw_err) < 0.05) else 0
            if self._mem["aligned"] >= 3:
                self._goto("insert")
            speed = p["speed"] if err > 0.03 else 0.5
            return self._move(info, target, hand_yaw + yaw_err, _CLOSE, speed, integrate=err < 0.02)
        if self._phase == "insert":
            goal = np.array([peg[0], peg[1], 0.83])
            target = eef + (goal - nut)
            err = np.linalg.norm((goal - nut)[:2])
            if err > 0.008 and nut[2] > 0.955:  # drifted off the peg before entering: hold height
                target[2] = eef[2]
            if nut[2] < 0.845 or (self._phase_t > 60 and nut[2] < 0.87):
                self._mem["release_at"] = eef.copy()
                self._goto("release")
            if self._phase_t > 80:  # stuck on the peg top: back up and realign
                self._mem["aligned"] = 0
                self._goto("carry")
            return self._move(info, target, hand_yaw + yaw_err, _CLOSE, 0.6)
        if self._phase == "release":
            if self._phase_t >= 8:
                self._goto("retreat")
            return self._move(info, self._mem["release_at"], hand_yaw, _OPEN)
        return self._move(info, self._mem["release_at"] + np.array([0.0, 0.0, 0.12]), hand_yaw, _OPEN)
