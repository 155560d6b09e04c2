"""`lwd study`: cells cached by their exact settings, resumable, summarised with intervals."""

from __future__ import annotations


import pytest

pytest.importorskip("metaworld")

SPEC = """
name = "tiny"
suite = "metaworld/reach-v3"
episodes = 2
seeds = [0, 1]
horizons = [4, 8]
perturbations = ["none"]

[data.clean]
demos = 2

[methods.lwd]
preset = "default"
set = ["vae_steps=3", "prior_steps=3", "horizon=4", "latent_dim=4", "policy_hidden=[8]", "chunk_size=64",
       "hyper_hidden=[8]", "encoder_dim=8", "encoder_heads=2", "denoiser_width=8", "denoiser_blocks=1"]

[methods.bc]
set = ["steps=3"]
"""


def test_study_runs_missing_cells_only_and_reruns_a_changed_one(tmp_path, counted):
    from lwd.experiments.study import run_study

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    summary = run_study(spec, root=tmp_path, progress=False)
    # 2 seeds x (lwd at H 4 and 8, bc once) = 6 cells from 4 training runs
    assert (summary["cells_planned"], summary["cells_done"], counted["train"], counted["eval"]) == (6, 6, 4, 6)
    cells = sorted((tmp_path / "benchmarks/results/studies/tiny/cells").glob("*.json"))
    assert len(cells) == 6
    rows = {(r["method"], r["horizon"]): r for r in summary["rows"]}
    assert rows[("lwd", 4)]["interval"] == "t+wilson" and len(rows[("lwd", 4)]["seeds"]) == 2
    assert rows[("bc", None)]["samples"] == [3 * 256, 3 * 256]  # samples seen: steps x batch
    assert "95% intervals" in (tmp_path / "benchmarks/results/studies/tiny.md").read_text()
    assert (tmp_path / "benchmarks/results/studies/tiny.png").stat().st_size > 0

    # Everything cached: nothing trains or evaluates again.
    run_study(spec, root=tmp_path, progress=False)
    assert (counted["train"], counted["eval"]) == (4, 6)

    # An interrupted study (a cell's file missing) reruns that cell only, reusing its trained run.
    cells[0].unlink()
    run_study(spec, root=tmp_path, progress=False)
    assert (counted["train"], counted["eval"]) == (4, 7)

    # A changed setting changes the key of the cells it touches: BC's two seeds train and run again.
    spec.write_text(SPEC.replace('set = ["steps=3"]', 'set = ["steps=4"]'))
    summary = run_study(spec, root=tmp_path, progress=False)
    assert (counted["train"], counted["eval"]) == (6, 9)
    assert {tuple(r["samples"]) for r in summary["rows"] if r["method"] == "bc"} == {(4 * 256, 4 * 256)}


def test_a_study_resumes_on_a_fresh_machine_from_its_result_files_alone(tmp_path, counted):
    """Cell files are all a study needs: with runs/ and data/ gone, finished cells are not rerun."""
    import shutil

    from lwd.experiments.study import run_study

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC.replace("seeds = [0, 1]", "seeds = [0]"))
    run_study(spec, root=tmp_path, progress=False)
    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(tmp_path / "data")
    before = dict(counted)
    summary = run_study(spec, root=tmp_path, progress=False)
    assert counted == before and summary["cells_done"] == 3
    assert {r["interval"] for r in summary["rows"]} == {"wilson"}  # one seed: Wilson over episodes


def test_spec_errors_name_the_problem(tmp_path):
    from lwd.experiments.study import StudySpec

    with pytest.raises(ValueError, match=r"unknown keys \['seed'\]"):
        StudySpec.parse({"name": "x", "suite": "pusht", "episodes": 1, "seeds": [0], "horizons": [8], "data": {}, "methods": {},
                         "seed": 3})
    with pytest.raises(ValueError, match="demos = N"):
        StudySpec.parse({"name": "x", "suite": "pusht", "episodes": 1, "seeds": [0], "horizons": [8], "data": {"clean": {}},
                         "methods": {"bc": {}}})
    with pytest.raises(ValueError, match="DataSpec.demos must be an integer"):
        StudySpec.parse({"name": "x", "suite": "pusht", "episodes": 1, "seeds": [0], "horizons": [8],
                         "data": {"clean": {"demos": "many"}}, "methods": {"bc": {}}})


def test_another_study_reuses_cells_with_the_same_settings_only(tmp_path, counted):
    """A cell's key is its settings, so a second study takes finished cells from the first (marked as
    reused) and runs only what differs: here a new horizon and BC with more steps."""
    import json

    from lwd.experiments.study import run_study

    first = tmp_path / "tiny.toml"
    first.write_text(SPEC.replace("seeds = [0, 1]", "seeds = [0]"))
    run_study(first, root=tmp_path, progress=False)
    assert (counted["train"], counted["eval"]) == (2, 3)
    second = tmp_path / "other.toml"
    second.write_text(SPEC.replace("seeds = [0, 1]", "seeds = [0]").replace('name = "tiny"', 'name = "other"')
                      .replace("horizons = [4, 8]", "horizons = [4, 8, 16]").replace('set = ["steps=3"]', 'set = ["steps=4"]'))
    summary = run_study(second, root=tmp_path, progress=False)
    assert summary["cells_done"] == 4
    assert (counted["train"], counted["eval"]) == (3, 5)  # BC retrained; LWD's run reused, evaluated at H = 16 only
    cells = {p.name.split("-s0-")[0] + "-" + p.name.split("-")[3]: json.loads(p.read_text())
             for p in (tmp_path / "benchmarks/results/studies/other/cells").glob("*.json")}
    reused = sorted(k for k, v in cells.items() if "reused_from" in v)
    assert reused == ["lwd-clean-H4", "lwd-clean-H8"]
    assert all(v["reused_from"].startswith("benchmarks/results/studies/tiny/cells/") for k, v in cells.items() if k in reused)


def test_a_study_runs_under_torchrun_with_ranks_sharing_each_job(tmp_path):
    """Two processes: each run trains with DDP, each cell's episodes are split and gathered, rank 0 writes."""
    import json
    import os
    import subprocess
    import sys

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC.replace("seeds = [0, 1]", "seeds = [0]").replace("episodes = 2", "episodes = 3"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29400 + os.getpid() % 300),
           "-m", "lwd.cli", "study", str(spec)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = [json.loads(p.read_text()) for p in (tmp_path / "benchmarks/results/studies/tiny/cells").glob("*.json")]
    assert len(cells) == 3 and all(c["episodes_run"] == 3 for c in cells)
    assert done.stdout.count("study tiny: 3 of 3 cells done") == 1  # reported once, by rank 0
    # one line per trained run and per evaluated cell, from rank 0 only (2 runs: lwd and bc; 3 cells)
    assert (done.stdout.count(": trained in "), done.stdout.count(" none: success ")) == (2, 3), done.stdout[-2000:]
    assert "lwd clean seed 0: H = 8, none: success" in done.stdout
    log = json.loads(next((tmp_path / "runs/studies").glob("lwd-*/train_log.json")).read_text())
    assert log["hardware"]["processes"] == 2


def test_seed_and_method_filters_run_a_slice_and_refuse_unknown_values(tmp_path, counted):
    from lwd.experiments.study import run_study

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    summary = run_study(spec, root=tmp_path, progress=False, only=["lwd"], only_seeds=[1], only_data=["clean"])
    assert (summary["cells_done"], counted["train"], counted["eval"]) == (2, 1, 2)  # lwd seed 1 at H 4 and 8
    cells = sorted(p.name for p in (tmp_path / "benchmarks/results/studies/tiny/cells").glob("*.json"))
    assert len(cells) == 2 and all(name.startswith("lwd-clean-s1-") for name in cells)
    summary = run_study(spec, root=tmp_path, progress=False, only_seeds=[0], only_horizons=[8])
    assert (summary["cells_done"], counted["train"], counted["eval"]) == (4, 3, 4)  # lwd s0 at H 8, and BC (no horizon)
    h4 = [p.name for p in (tmp_path / "benchmarks/results/studies/tiny/cells").glob("lwd-clean-s0-H4-*.json")]
    assert h4 == []
    with pytest.raises(ValueError, match="not seeds"):
        run_study(spec, root=tmp_path, progress=False, only_seeds=[7])
    with pytest.raises(ValueError, match="not data"):
        run_study(spec, root=tmp_path, progress=False, only_data=["recovery"])
    with pytest.raises(ValueError, match="not horizons"):
        run_study(spec, root=tmp_path, progress=False, only_horizons=[5])


def test_tables_list_separated_pairs_and_apart_in_every_seed_pairs_apart():
    from lwd.experiments.stats import success_interval
    from lwd.experiments.study import separated_pairs

    def row(method, per_seed, horizon=16):
        interval = success_interval(per_seed)
        return {"data": "clean", "method": method, "horizon": horizon, "perturbation": "push", "per_seed": per_seed,
                "low": interval.low, "high": interval.high}

    rows = [row("lwd", [(17, 50), (14, 50)]), row("warpd", [(2, 50), (3, 50)]), row("dp", [(48, 50)]),
            row("bc", [(0, 50), (1, 50)], horizon=None)]
    separated = separated_pairs(rows)
    apart = separated_pairs(rows, rule="every seed")
    assert "clean, H = 16, push: dp > warpd" in separated and "clean, H = 16, push: dp > warpd" not in apart
    assert "clean, H = 16, push: lwd > warpd" in apart and "clean, H = 16, push: lwd > warpd" not in separated
    assert "clean, H = 16, push: lwd > bc" in apart  # BC's every-step row joins each horizon's group
    assert not any("warpd > lwd" in line for line in separated + apart)
    with pytest.raises(ValueError, match="rule"):
        separated_pairs(rows, rule="pooled")


def test_styled_data_is_made_with_its_mix_and_keyed_apart(tmp_path):
    from lwd.data import Episodes
    from lwd.experiments.study import StudySpec, _make_data

    raw = {"name": "x", "suite": "metaworld/reach-wall-low", "episodes": 1, "seeds": [0], "horizons": [8],
           "data": {"mixed": {"demos": 8, "styles": "left,right"}, "plain": {"demos": 8}}, "methods": {"bc": {}}}
    spec = StudySpec.parse(raw)
    mixed, plain = spec.data
    assert mixed.key(spec.suite) != plain.key(spec.suite)
    _make_data(spec, {"mixed", "plain"}, tmp_path, progress=False)
    made = {d.name: Episodes.load(d.location(spec.suite, tmp_path)) for d in spec.data}
    assert set(made["mixed"].attrs["style_counts"]) == {"left", "right"}
    assert sum(made["mixed"].attrs["style_counts"].values()) == 8
    assert set(made["plain"].attrs.get("style_counts", {"left": 8})) == {"left"}
    bad = {**raw, "data": {"mixed": {"demos": 8, "styles": "left,up"}}}
    with pytest.raises(ValueError, match=r"data\.mixed: styles: unknown style 'up'"):
        StudySpec.parse(bad)


def test_n_envs_enters_a_cells_key_only_where_batched_plans_can_move_its_result():
    import tomllib

    from lwd.experiments.study import StudySpec, plan_study

    def keys(extra: str) -> list[str]:
        return [cell.key for cell in plan_study(StudySpec.parse(tomllib.loads(extra + SPEC)))]

    one = keys("")
    assert keys("n_envs = 10\n") == one  # unbatched: every n_envs gives bit-identical episodes
    batched = keys("batch_plans = true\n")
    assert batched != one and keys("batch_plans = true\nn_envs = 1\n") == batched
    assert set(keys("batch_plans = true\nn_envs = 10\n")).isdisjoint(batched)


STYLED_SPEC = """
name = "styled"
suite = "metaworld/reach-wall-low"
episodes = 4
seeds = [0]
horizons = [8]
perturbations = ["none"]

[data.mixed]
demos = 4
styles = "left,right"

[data.plain]
demos = 2

[methods.bc]
set = ["steps=300"]
"""


def test_study_on_styled_data_records_the_rollouts_style_mix_as_the_rule_labels_them(tmp_path):
    """A cell on data with styles labels each rollout by the suite's rule, during the evaluation; the
    labels equal those of the same episodes recorded (lwd eval --rollouts) and labelled afterwards."""
    import json

    from lwd.analysis.styles import consistency, label_episodes, style_shares, total_variation
    from lwd.data import Episodes
    from lwd.experiments.study import run_study
    from lwd.pipeline import evaluate_run

    spec = tmp_path / "styled.toml"
    spec.write_text(STYLED_SPEC)
    run_study(spec, root=tmp_path, progress=False)
    cells = {p.name.split("-")[1]: json.loads(p.read_text()) for p in (tmp_path / "benchmarks/results/studies/styled/cells").glob("*.json")}
    mixed, plain = cells["mixed"], cells["plain"]
    assert "styles" not in plain and all(len(row) == 6 for row in plain["episodes"])  # plain data: success only
    labels = [row[6] for row in mixed["episodes"]]
    record = mixed["styles"]
    assert record["episodes"] == 4 and record["undecided"] == labels.count("undecided")
    assert record["shares"] == style_shares(labels, ["left", "right"])

    data = next((tmp_path / "data/studies").glob("*mixed*.zarr"))
    demo_labels = [s.label for s in label_episodes(Episodes.load(data), "metaworld/reach-wall-low")]
    assert record["data_shares"] == style_shares(demo_labels, ["left", "right"]) and record["data_episodes"] == 4
    assert record["undecided"] < 4  # 300 BC steps round the wall: the labels say which way
    assert record["tv_to_data"] == pytest.approx(total_variation(record["shares"], record["data_shares"]))

    run = next((tmp_path / "runs/studies").glob("bc-*"))
    recorded = evaluate_run(run, env="metaworld/reach-wall-low", episodes=4, progress=False, rollouts=tmp_path / "rollouts.zarr")
    shown = label_episodes(Episodes.load(recorded["rollouts"]))
    assert [s.label for s in shown] == labels
    # whether each episode's style held over its phase: recorded per row (1 / 0 / null) and summed up as the rule says
    assert [row[7] for row in mixed["episodes"]] == [None if s.consistent is None else int(s.consistent) for s in shown]
    assert (record["consistency"], record["consistency_episodes"]) == consistency(labels, [s.consistent for s in shown])
    demo_styles = label_episodes(Episodes.load(data), "metaworld/reach-wall-low")
    assert record["data_consistency"] == consistency(demo_labels, [s.consistent for s in demo_styles])[0]
    summary = (tmp_path / "benchmarks/results/studies/styled.md").read_text()
    assert "Style mix of the rollouts" in summary and "style held (demos)" in summary
    won = {name: [int(row[2]) for row in mixed["episodes"] if row[6] == name] for name in set(labels)}
    by_style = ", ".join(f"{name} {sum(w) / len(w):.2f} ({len(w)})" for name, w in sorted(won.items(), key=lambda i: (i[0] == "undecided", i[0])))
    assert f"| {by_style} |" in summary  # success per style the rollouts showed, pooled over seeds
