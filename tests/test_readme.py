"""README.md's code blocks, run as a user would run them, on tiny settings: the README may not drift from the code.

Every fenced ```python or ```bash block in README.md carries a marker, an HTML comment on the line
before it:

    <!-- readme-test: run -->             bash: each line (backslash continuations joined) is an
                                          `lwd ...` command, run through `lwd.cli.main` and required
                                          to exit 0; python: executed in a fresh namespace
    <!-- readme-test: script cwd=DIR -->  python: saved as DIR/readme_block.py and run as its own
                                          process in DIR (for code that needs `__main__`)
    <!-- readme-test: skip (why) -->      not run; such a block may hold no `lwd` command

All blocks run in README order in one temporary folder, so a later block uses what an earlier
one wrote (data/mt10.zarr, runs/mt10-lwd, ...). What differs from a user's run, and nothing else:

- SUBSTITUTIONS below rewrite the text of each block (fewer episodes, fewer loop steps), and an
  `lwd eval` or `lwd bench` without `--episodes` gets `--episodes 1`;
- every training stage stops after TRAIN_STEPS steps (`lwd.pipeline.build_configs` is wrapped);
- env episodes end after EPISODE_STEPS steps, except in `lwd demos` (the expert must finish);
- STAND_INS writes small files in other projects' formats under the names the README uses.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_CHARS = 15_000

SUBSTITUTIONS = [
    (r"--episodes \d+", "--episodes 1"),  # demos and evaluations: one episode per task
    (r"\bepisodes=\d+", "episodes=1"),
    (r"\bsteps=10_000\b", "steps=300"),  # the two-rate loop: 0.3 s at 1 kHz
    (r"^lwd bench ", "lwd bench --latency-steps 0 "),  # no per-cell latency timing (DP's replans make it slow)
]
TRAIN_STEPS = 3
STEP_FIELDS = ("steps", "vae_steps", "prior_steps", "wm_steps")  # training-stage lengths of the methods' configs
EPISODE_STEPS = 24

MARKER = re.compile(r"<!--\s*readme-test:\s*(run|skip|script)\b([^>]*)-->")
FENCE = re.compile(r"^```(\w*)\s*$")
TESTED_LANGUAGES = ("python", "bash", "sh", "shell", "console")


@dataclasses.dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str  # "run", "script", "skip" or "" (none)
    options: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language}-{self.marker or 'unmarked'}"


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        blocks.append(Block(start + 1, language, "\n".join(lines[start + 1 : end]),
                            marker.group(1) if marker else "", marker.group(2).strip() if marker else ""))
        i = end + 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: comments dropped, backslash continuations joined."""
    commands, current = [], ""
    for raw in code.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


def shrink(code: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        code = re.sub(pattern, replacement, code, flags=re.M)
    return code


BLOCKS = readme_blocks(README.read_text())
RUN_BLOCKS = [b for b in BLOCKS if b.marker in ("run", "script")]


# ------------------------------------------------------------------------------ the README's shape
def test_every_python_and_bash_block_is_marked_and_lwd_commands_are_run():
    for block in BLOCKS:
        has_lwd = any(c.startswith("lwd ") for c in shell_commands(block.code))
        if block.language in TESTED_LANGUAGES:
            assert block.marker, f"README.md line {block.line}: a ```{block.language} block needs a <!-- readme-test: ... --> marker"
        if has_lwd:
            assert block.marker == "run" and block.language == "bash", (
                f"README.md line {block.line}: a block with `lwd` commands must be ```bash and marked run")
        if block.marker == "run" and block.language == "bash":
            for command in shell_commands(block.code):
                assert command.startswith("lwd "), f"README.md line {block.line}: a run bash block holds only lwd commands, not {command!r}"
    assert RUN_BLOCKS, "no README block is marked to run"


def test_the_two_commands_are_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    text = README.read_text()
    for target in ("quickstart", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no {target} target"


def test_readme_stays_a_short_guide():
    size = len(README.read_text())
    assert size < MAX_README_CHARS, f"README.md has {size} characters; move narrative to BENCHMARKS.md or docs/ (limit {MAX_README_CHARS})"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_to_markdown_sections_resolve():
    for match in re.finditer(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", README.read_text()):
        target = ROOT / match.group(1)
        assert target.is_file(), f"README links to {match.group(1)}, which does not exist"
        if match.group(2):
            anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", target.read_text(), re.M)}
            assert match.group(2) in anchors, f"README links to {match.group(1)}#{match.group(2)}, which no heading there gives"


# ------------------------------------------------------------------------------ running the blocks
def _write_stand_ins(folder: Path) -> None:
    """Other projects' files the README names, as small files in their formats."""
    import zarr

    from lwd.envs.pusht import block_keypoints

    rng = np.random.default_rng(0)
    lengths = (5, 7)
    n = sum(lengths)
    state = np.column_stack([rng.uniform(50, 450, (n, 4)), rng.uniform(-np.pi, np.pi, n)]).astype(np.float32)
    keypoint = np.stack([block_keypoints(s[2:4], s[4]) for s in state.astype(np.float64)]).astype(np.float32)
    store = zarr.storage.ZipStore(str(folder / "pusht_cchi_v7_replay.zarr.zip"), mode="w")
    root = zarr.open_group(store=store, mode="w", zarr_format=2)
    data = root.create_group("data")
    for key, value in {"state": state, "keypoint": keypoint, "action": rng.uniform(0, 512, (n, 2)).astype(np.float32)}.items():
        data.create_array(key, shape=value.shape, dtype=value.dtype, chunks=value.shape)[...] = value
    root.create_group("meta").create_array("episode_ends", shape=(len(lengths),), dtype=np.int64)[...] = np.cumsum(lengths)
    store.close()


class _Caps:
    episodes = True  # False while `lwd demos` runs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    import lwd.pipeline
    import lwd.suites

    folder = tmp_path_factory.mktemp("readme")
    _write_stand_ins(folder)
    real_build_configs = lwd.pipeline.build_configs
    real_make_env = lwd.suites.Suite.make_env

    def build_configs(*args, **kwargs):
        cfg, train_cfg = real_build_configs(*args, **kwargs)
        caps = {f: min(getattr(cfg, f), TRAIN_STEPS) for f in STEP_FIELDS if hasattr(cfg, f)}
        return dataclasses.replace(cfg, **caps), train_cfg

    def make_env(self, task, **kwargs):
        if _Caps.episodes:
            kwargs.setdefault("max_episode_steps", EPISODE_STEPS)
        return real_make_env(self, task, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lwd.pipeline, "build_configs", build_configs)
        mp.setattr(lwd.suites.Suite, "make_env", make_env)
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.chdir(folder)
        yield folder


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_readme_block_runs(block, workdir, capsys):
    from lwd.cli import main

    code = shrink(block.code)
    where = f"README.md line {block.line}"
    if block.language == "bash":
        for command in shell_commands(code):
            argv = shlex.split(command)[1:]
            if argv[0] in ("eval", "bench") and "--episodes" not in argv:
                argv += ["--episodes", "1"]  # the default of 50 would run 50 episodes per task
            _Caps.episodes = argv[0] != "demos"
            try:
                status = main(argv)
            finally:
                _Caps.episodes = True
            assert status == 0, f"{where}: `{command}` exited with {status}:\n{capsys.readouterr().err[-2000:]}"
    elif block.marker == "script":
        options = dict(o.split("=", 1) for o in block.options.split() if "=" in o)
        cwd = workdir / options.get("cwd", ".")
        (cwd / "readme_block.py").write_text(code)
        proc = subprocess.run([sys.executable, "readme_block.py"], cwd=cwd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{where}: the script failed:\n{proc.stdout[-1000:]}\n{proc.stderr[-3000:]}"
    else:  # a module of its own, as a user's script would be (dataclasses look their module up)
        module = types.ModuleType("readme_block")
        sys.modules[module.__name__] = module
        try:
            exec(compile(code, where, "exec"), module.__dict__)
        finally:
            del sys.modules[module.__name__]
