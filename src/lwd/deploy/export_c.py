"""`lwd export RUN --format c --out DIR`: the generated policy's control step as dependency-free C99.

What ships to a robot between generations is a small MLP; in NumPy a step costs microseconds of
interpreter overhead around a few thousand multiply-adds. The C export removes that overhead:

    lwd_controller.h   the layer sizes, the activation and the API
    lwd_controller.c   the observation/action normalisers as constants, static buffers, no malloc
    Makefile           `make` -> liblwd_controller.so (or the one-line cc command in the header)
    c.json             what was exported, from which run (SHA-256 of its weights and of each file)

The C API (names prefixed `lwd_`: C has one namespace, and a robot's program has its own `step`):

    int  lwd_set_weights(const float *theta);   /* (P,) as the generator emits it; folds the normalisers */
    int  lwd_step(const float *raw_stacked_obs, float *raw_action);  /* (k*Do,) oldest first -> (Da,) */
    int  lwd_act(const float *raw_obs, float *raw_action);   /* keeps the last k observations itself */
    void lwd_reset(void);                        /* a new episode: forget the observation history */

theta has the layout of `lwd.methods.target_mlp` (layer by layer: weight (in, out) row-major,
then bias (out,); normalised observations in, normalised action out). `lwd_set_weights` folds
the normalisers into the first and last layer in double precision exactly as the NumPy
controller (`lwd.deploy.numpy_controller.Controller.set_weights`) does, so a step is only the MLP.

`CController` (below) compiles the sources with the machine's C compiler into a cache folder and
drives the library through ctypes with the NumPy controller's interface (`load`, `set_weights`,
`act`, `reset`, `obs_steps`), so `lwd eval --exported` and `lwd.deploy.runtime.run_loop` can run it.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "lwd-c-controller"
VERSION = 1
FILES = ("lwd_controller.h", "lwd_controller.c", "Makefile", "c.json")
LIBRARY = "liblwd_controller.so"

#: One C expression of `x` (float) per activation of `target_mlp.ACTIVATIONS`; an activation missing
#: here is refused at export. mish as the NumPy controller computes it: x * tanh(log1p(exp(x))).
ACTIVATION_C = {"relu": "x > 0.0f ? x : 0.0f", "tanh": "tanhf(x)", "mish": "x * tanhf(log1pf(expf(x)))"}

#: Flags of the build on load and of the Makefile. -O3 vectorises the row-major matrix-vector loop.
#: -std=c99 keeps a*b+c unfused (no FMA): then the actions round as the NumPy runner's do, and a
#: 2-episode MT10 evaluation matched the library's rewards within 3%; with -ffp-contract=fast (15% fewer
#: instructions per step by callgrind, MT10 shape) one episode's summed reward drifted 5% (chaotic
#: contacts amplify the last-bit differences). -march=native is added when building where it runs.
CFLAGS = ("-O3", "-std=c99", "-fPIC", "-Wall", "-Wextra")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _floats(values: np.ndarray) -> str:
    """A C initialiser of doubles that round-trip exactly (17 significant digits)."""
    return ", ".join(f"{float(v):.17g}" for v in np.asarray(values, np.float64).reshape(-1))


def c_sources(layer_sizes: list[int], activation: str, obs_steps: int, obs_scale: np.ndarray, obs_shift: np.ndarray,
              action_scale: np.ndarray, action_shift: np.ndarray) -> dict[str, str]:
    """The header, the C file and the Makefile for one controller shape and its normalisers.

    layer_sizes: [k*Do, hidden..., Da]; the observation normalisers are per observation (Do,) and
    are tiled over the k stacked observations here, as the NumPy controller tiles them."""
    if activation not in ACTIVATION_C:
        raise ValueError(f"the C export implements the activations {', '.join(ACTIVATION_C)}; this policy uses {activation!r}")
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes) or obs_steps < 1 or sizes[0] % obs_steps:
        raise ValueError(f"layer_sizes {sizes} must be >= 2 positive sizes, the first a multiple of obs_steps={obs_steps}")
    obs_dim, action_dim = sizes[0] // obs_steps, sizes[-1]
    for name, value, width in (("obs_scale", obs_scale, obs_dim), ("obs_shift", obs_shift, obs_dim),
                               ("action_scale", action_scale, action_dim), ("action_shift", action_shift, action_dim)):
        value = np.asarray(value, np.float64)
        if value.shape != (width,) or not np.isfinite(value).all():
            raise ValueError(f"{name} must be {width} finite values, got shape {value.shape}")
    num_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    layers = len(sizes) - 1
    header = _HEADER.format(obs_dim=obs_dim, obs_steps=obs_steps, input_dim=sizes[0], action_dim=action_dim, layers=layers,
                            num_params=num_params, activation=activation, max_width=max(sizes[1:]),
                            sizes=", ".join(map(str, sizes)), cflags=" ".join(CFLAGS), library=LIBRARY)
    offsets, offset = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        offsets.append(offset)
        offset += fan_in * fan_out + fan_out
    forward = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        src = "x" if i == 0 else f"hidden[{(i - 1) % 2}]"
        dst = "y" if i == layers - 1 else f"hidden[{i % 2}]"
        forward.append(f"    dense({src}, {fan_in}, folded + {offsets[i]}, {fan_out}, {dst});")
        if i < layers - 1:
            forward.append(f"    activate({dst}, {fan_out});")
    source = _SOURCE.format(activation_expr=ACTIVATION_C[activation], activation=activation,
                            obs_scale=_floats(np.tile(obs_scale, obs_steps)), obs_shift=_floats(np.tile(obs_shift, obs_steps)),
                            action_scale=_floats(action_scale), action_shift=_floats(action_shift),
                            forward="\n".join(forward))
    makefile = _MAKEFILE.format(cflags=" ".join(CFLAGS), library=LIBRARY)
    return {"lwd_controller.h": header, "lwd_controller.c": source, "Makefile": makefile}


def write_c(generator: Any, run_dir: str | Path, tmp: Path) -> dict[str, Any]:
    """The C export of `generator` (a `lwd.methods.base.WeightGenerator`) into the empty folder `tmp`;
    returns the c.json record. `lwd.deploy.export.export_c` runs it (refusing existing files unless
    overwrite, leaving nothing of a failed export); the sources are compiled once here (when a
    compiler exists) so a broken export fails now, not on the robot."""
    from lwd.data.keys import ACTION, OBS

    model, target = generator.method, generator.target
    obs_scale, obs_shift = generator.input_normalizer.affine(OBS)  # of step vectors for a run that reads frames
    action_scale, action_shift = generator.input_normalizer.affine(ACTION, inverse=True)
    sources = c_sources(target.layer_sizes, target.activation, generator.policy_obs_steps, obs_scale, obs_shift,
                        action_scale, action_shift)
    for name, text in sources.items():
        (tmp / name).write_text(text)
    if compiler() is not None:
        build_library(tmp, cache=False)
    record = {"format": FORMAT, "version": VERSION, "method": model.name, "obs_dim": generator.input_dim,
              "action_dim": model.info.action_dim, "policy_obs_steps": generator.policy_obs_steps,
              "layer_sizes": target.layer_sizes, "activation": target.activation, "num_params": target.num_params,
              "trained_on": model.info.suite or model.info.dataset,
              "run_model_sha256": _sha256(Path(run_dir) / "model.safetensors"),
              "sha256": {name: _sha256(tmp / name) for name in sources}}
    for stray in tmp.iterdir():  # only the sources and c.json ship; the test build stays behind
        if stray.name not in sources:
            stray.unlink() if stray.is_file() else shutil.rmtree(stray)
    (tmp / "c.json").write_text(json.dumps(record, indent=2))
    return record


# ------------------------------------------------------------------------------ building and running
def compiler() -> str | None:
    """The C compiler: $CC, else cc, else gcc; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and (path := shutil.which(name)):
            return path
    return None


def build_library(folder: str | Path, cache: bool = True, flags: tuple[str, ...] | None = None) -> Path:
    """Compile `folder/lwd_controller.c` into a shared library; returns its path.

    cache: build into `$LWD_CACHE_DIR` (default ~/.cache/lwd) under the hash of the sources and
    the command, so each export compiles once per machine; else into `folder`. flags: the C flags,
    default CFLAGS + -march=native (the build runs where the library runs)."""
    folder = Path(folder)
    cc = compiler()
    if cc is None:
        raise RuntimeError(f"no C compiler (cc or gcc, or $CC) to build {folder}/lwd_controller.c; install gcc, "
                           "or run the NumPy controller (lwd export RUN --format npz)")
    flags = flags if flags is not None else (*CFLAGS, "-march=native")
    command = [cc, *flags, *([] if "-fPIC" in flags else ["-fPIC"]), "-shared", "-o", LIBRARY, "lwd_controller.c", "-lm"]
    if not cache:
        target = folder
    else:
        key = hashlib.sha256(json.dumps(command).encode() + (folder / "lwd_controller.c").read_bytes()
                             + (folder / "lwd_controller.h").read_bytes()).hexdigest()[:24]
        target = Path(os.environ.get("LWD_CACHE_DIR", Path.home() / ".cache" / "lwd")) / "c-controllers" / key
        if (target / LIBRARY).is_file():
            return target / LIBRARY
        target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".build-") as build:
        for name in ("lwd_controller.c", "lwd_controller.h"):
            shutil.copyfile(folder / name, Path(build) / name)
        done = subprocess.run(command, cwd=build, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed in {folder}:\n{done.stderr.strip()[-2000:]}")
        os.replace(Path(build) / LIBRARY, target / LIBRARY)  # atomic: a parallel loader sees all or nothing
    return target / LIBRARY


class CController:
    """The compiled C controller through ctypes, with the NumPy controller's interface.

    The library keeps its state in static buffers (a robot has one controller), so each instance
    loads its own copy of the shared library: two policies evaluated side by side (vector envs)
    must not share weights or observation history."""

    def __init__(self, library: str | Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lwd-c-") as tmp:  # a private copy: its own static buffers
            private = Path(tmp) / LIBRARY
            shutil.copyfile(library, private)
            self._lib = ctypes.CDLL(str(private))  # Linux keeps the mapping after the file is removed
        lib = self._lib
        read = lambda name: int(ctypes.c_int.in_dll(lib, name).value)  # noqa: E731
        self.obs_dim, self.obs_steps = read("lwd_obs_dim"), read("lwd_obs_steps")
        self.action_dim, self.num_params = read("lwd_action_dim"), read("lwd_num_params")
        floats = ctypes.POINTER(ctypes.c_float)
        for name, args in (("lwd_set_weights", [floats]), ("lwd_step", [floats, floats]), ("lwd_act", [floats, floats])):
            getattr(lib, name).argtypes, getattr(lib, name).restype = args, ctypes.c_int
        lib.lwd_reset.argtypes, lib.lwd_reset.restype = [], None
        # Buffers and their pointers made once: a step converts nothing but the observation.
        self._obs = np.zeros(self.obs_dim, np.float32)
        self._stacked = np.zeros(self.obs_steps * self.obs_dim, np.float32)
        self._action = np.zeros(self.action_dim, np.float32)
        self._obs_p, self._stacked_p, self._action_p = (a.ctypes.data_as(floats) for a in (self._obs, self._stacked, self._action))
        self._act, self._step = lib.lwd_act, lib.lwd_step
        self._has_weights = False

    @classmethod
    def load(cls, folder: str | Path) -> "CController":
        """Build (cached) and load the controller exported into `folder` by `lwd export RUN --format c`."""
        folder = Path(folder)
        for name in FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}/{name} is missing; write it with lwd export RUN --format c --out {folder}")
        return cls(build_library(folder))

    def set_weights(self, theta: np.ndarray) -> None:
        """Install a generated weight vector (P,) (float32; the normalisers are folded in C)."""
        theta = np.ascontiguousarray(theta, np.float32).reshape(-1)
        if theta.size != self.num_params:
            raise ValueError(f"expected {self.num_params} weights, got {theta.size}")
        if self._lib.lwd_set_weights(theta.ctypes.data_as(ctypes.POINTER(ctypes.c_float))) != 0:
            raise ValueError("theta holds NaN or infinite values; the previous weights stay installed")
        self._has_weights = True

    def reset(self) -> None:
        """Forget the observation history (a new episode)."""
        self._lib.lwd_reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One control step: raw observation (Do,) -> raw action (Da,); the library stacks the last k."""
        if not self._has_weights:
            raise RuntimeError("no weights yet: call set_weights(theta) first")
        np.copyto(self._obs, obs)  # (casts to float32; a wrong size raises)
        self._act(self._obs_p, self._action_p)
        return self._action.copy()

    def step(self, stacked_obs: np.ndarray) -> np.ndarray:
        """The stateless step: raw stacked observations (k*Do,), oldest first -> raw action (Da,)."""
        if not self._has_weights:
            raise RuntimeError("no weights yet: call set_weights(theta) first")
        np.copyto(self._stacked, stacked_obs)
        self._step(self._stacked_p, self._action_p)
        return self._action.copy()


def check_record(folder: str | Path, run_dir: str | Path | None, num_params: int, obs_dim: int) -> dict[str, Any]:
    """c.json names this model's shape and, with `run_dir`, this run's weights and each file's SHA-256."""
    folder = Path(folder)
    try:
        record = json.loads((folder / "c.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder}/c.json is not readable JSON ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("version") != VERSION:
        raise ValueError(f"{folder}/c.json is not an {FORMAT} v{VERSION} record")
    if record.get("num_params") != num_params or record.get("obs_dim") != obs_dim:
        raise ValueError(f"{folder}/c.json was exported from another model ({record.get('num_params')} weights, "
                         f"{record.get('obs_dim')}-d observations; this run: {num_params}, {obs_dim})")
    if run_dir is not None:
        if record.get("run_model_sha256") != _sha256(Path(run_dir) / "model.safetensors"):
            raise ValueError(f"{folder}/c.json was exported from another run than {run_dir} (its weights differ)")
        for name, expected in (record.get("sha256") or {}).items():
            if not (folder / name).is_file() or _sha256(folder / name) != expected:
                raise ValueError(f"{folder}/{name} is not the file exported with c.json (missing or its SHA-256 differs)")
    return record


# ------------------------------------------------------------------------------ templates
_HEADER = """\
/* A generated LWD policy's control step: {layers} dense layers {sizes}, {activation}, {num_params} weights.
 * Written by `lwd export RUN --format c`. C99, no dependencies but libm, no allocation.
 *
 * Build: make    (or: cc {cflags} -march=native -shared -o {library} lwd_controller.c -lm)
 *
 * Per generation (every H steps): lwd_set_weights(theta), theta as LWD's generator emits it:
 *   layer by layer, weight (in, out) row-major then bias (out,), normalised obs in, normalised action out.
 *   The observation and action normalisers (constants in lwd_controller.c) are folded in here.
 * Per control step: lwd_act(raw_obs, raw_action) keeps the last {obs_steps} observations itself;
 *   or lwd_step(raw_stacked_obs, raw_action) with the last {obs_steps} stacked, oldest first.
 * All state is static: one controller per loaded library, not thread-safe.
 */
#ifndef LWD_CONTROLLER_H
#define LWD_CONTROLLER_H

#define LWD_OBS_DIM {obs_dim}
#define LWD_OBS_STEPS {obs_steps}
#define LWD_INPUT_DIM {input_dim}
#define LWD_ACTION_DIM {action_dim}
#define LWD_NUM_LAYERS {layers}
#define LWD_NUM_PARAMS {num_params}
#define LWD_MAX_WIDTH {max_width}
#define LWD_LAYER_SIZES {{{sizes}}}
#define LWD_ACTIVATION "{activation}"

extern const int lwd_obs_dim, lwd_obs_steps, lwd_action_dim, lwd_num_params;
extern const int lwd_layer_sizes[LWD_NUM_LAYERS + 1];

/* Install new weights (LWD_NUM_PARAMS floats). Returns 0, or -1 if theta holds NaN or infinity
 * (then the previous weights stay). */
int lwd_set_weights(const float *theta);
/* raw_stacked_obs: LWD_INPUT_DIM floats -> raw_action: LWD_ACTION_DIM floats. Returns 0, or -1 before
 * the first lwd_set_weights (raw_action is then left untouched). */
int lwd_step(const float *raw_stacked_obs, float *raw_action);
/* raw_obs: LWD_OBS_DIM floats; before LWD_OBS_STEPS observations exist the first stands in for the
 * missing ones (as lwd's policies do). Returns as lwd_step. */
int lwd_act(const float *raw_obs, float *raw_action);
/* A new episode: forget the observation history. */
void lwd_reset(void);

#endif
"""

_SOURCE = """\
/* See lwd_controller.h. Written by `lwd export RUN --format c`. */
#include "lwd_controller.h"

#include <math.h>
#include <string.h>

const int lwd_obs_dim = LWD_OBS_DIM, lwd_obs_steps = LWD_OBS_STEPS, lwd_action_dim = LWD_ACTION_DIM,
          lwd_num_params = LWD_NUM_PARAMS;
const int lwd_layer_sizes[LWD_NUM_LAYERS + 1] = LWD_LAYER_SIZES;

/* raw obs -> normalised: x * scale + shift (tiled over the stacked observations) */
static const double obs_scale[LWD_INPUT_DIM] = {{{obs_scale}}};
static const double obs_shift[LWD_INPUT_DIM] = {{{obs_shift}}};
/* normalised action -> raw: y * scale + shift */
static const double action_scale[LWD_ACTION_DIM] = {{{action_scale}}};
static const double action_shift[LWD_ACTION_DIM] = {{{action_shift}}};

static float folded[LWD_NUM_PARAMS];  /* theta with the normalisers folded into the outer layers */
static float hidden[2][LWD_MAX_WIDTH];
static float history[LWD_INPUT_DIM];
static int have_weights = 0, started = 0;

int lwd_set_weights(const float *theta) {{
    int l, i, j;
    long offset = 0;
    for (i = 0; i < LWD_NUM_PARAMS; i++)
        if (!isfinite(theta[i])) return -1;
    for (l = 0; l < LWD_NUM_LAYERS; l++) {{
        const int n_in = lwd_layer_sizes[l], n_out = lwd_layer_sizes[l + 1];
        const int first = l == 0, last = l == LWD_NUM_LAYERS - 1;
        const float *w = theta + offset, *b = w + (long)n_in * n_out;
        float *fw = folded + offset, *fb = fw + (long)n_in * n_out;
        for (j = 0; j < n_out; j++) {{  /* in float64, as the NumPy controller folds */
            double bias = b[j];
            if (first)
                for (i = 0; i < n_in; i++) bias += obs_shift[i] * (double)w[(long)i * n_out + j];
            if (last) bias = bias * action_scale[j] + action_shift[j];
            fb[j] = (float)bias;
        }}
        for (i = 0; i < n_in; i++)
            for (j = 0; j < n_out; j++) {{
                double weight = w[(long)i * n_out + j];
                if (first) weight *= obs_scale[i];
                if (last) weight *= action_scale[j];
                fw[(long)i * n_out + j] = (float)weight;
            }}
        offset += (long)n_in * n_out + n_out;
    }}
    have_weights = 1;
    return 0;
}}

/* y (n_out) = x (n_in) @ W (n_in, n_out) + b: rows of W are contiguous, so the inner loop is a
 * vectorisable axpy; inlined with constant sizes. */
static inline void dense(const float *restrict x, const int n_in, const float *restrict wb, const int n_out,
                         float *restrict y) {{
    int i, j;
    const float *b = wb + (long)n_in * n_out;
    for (j = 0; j < n_out; j++) y[j] = b[j];
    for (i = 0; i < n_in; i++) {{
        const float xi = x[i];
        const float *restrict row = wb + (long)i * n_out;
        for (j = 0; j < n_out; j++) y[j] += xi * row[j];
    }}
}}

/* {activation} */
static inline void activate(float *h, const int n) {{
    int j;
    for (j = 0; j < n; j++) {{
        const float x = h[j];
        h[j] = {activation_expr};
    }}
}}

int lwd_step(const float *restrict x, float *restrict y) {{
    if (!have_weights) return -1;
{forward}
    return 0;
}}

int lwd_act(const float *raw_obs, float *raw_action) {{
    int s;
    if (started) {{  /* slide by one observation, oldest first */
        memmove(history, history + LWD_OBS_DIM, sizeof(float) * (LWD_INPUT_DIM - LWD_OBS_DIM));
        memcpy(history + LWD_INPUT_DIM - LWD_OBS_DIM, raw_obs, sizeof(float) * LWD_OBS_DIM);
    }} else {{
        for (s = 0; s < LWD_OBS_STEPS; s++) memcpy(history + s * LWD_OBS_DIM, raw_obs, sizeof(float) * LWD_OBS_DIM);
        started = 1;
    }}
    return lwd_step(history, raw_action);
}}

void lwd_reset(void) {{ started = 0; }}
"""

_MAKEFILE = """\
# Build the controller as a shared library: `make` (on the machine that runs it), or cross-compile
# with `make CC=aarch64-linux-gnu-gcc ARCH=`. Written by `lwd export RUN --format c`.
CC ?= cc
CFLAGS ?= {cflags}
ARCH ?= -march=native

{library}: lwd_controller.c lwd_controller.h
\t$(CC) $(CFLAGS) $(ARCH) -shared -o $@ lwd_controller.c -lm

clean:
\trm -f {library}

.PHONY: clean
"""
