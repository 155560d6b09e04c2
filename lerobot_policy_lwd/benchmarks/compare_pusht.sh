#!/usr/bin/env bash
# LWD (this plugin) and LeRobot's own diffusion policy, both trained by lerobot-train on the same lwd
# PushT expert demos (LeRobot's PushT layout) for the same number of steps and batch size, both
# evaluated by lerobot-eval on gym-pusht (seeds from 100000); per-step latency by latency.py.
# Run from the repository root in LeRobot's venv (make setup-lerobot):
#   OUT=runs/lerobot-compare DEMOS=50 STEPS=4000 EPISODES=50 bash lerobot_policy_lwd/benchmarks/compare_pusht.sh
set -euo pipefail
BIN=${BIN:-.venv-lerobot/bin}
OUT=${OUT:-runs/lerobot-compare}; DEMOS=${DEMOS:-50}; STEPS=${STEPS:-4000}; EPISODES=${EPISODES:-50}
BATCH=${BATCH:-64}; VAE_STEPS=${VAE_STEPS:-$((STEPS * 3 / 4))}
# LeRobot's diffusion defaults (down_dims 512-1024-2048) are a GPU model; DP_DOWN_DIMS sets the U-Net width.
DP_DOWN_DIMS=${DP_DOWN_DIMS:-[256,512,1024]}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
test -e "$OUT/demos.zarr" || $BIN/lwd demos pusht/state --episodes "$DEMOS" --out "$OUT/demos.zarr"
test -e "$OUT/dataset" || $BIN/python -m lerobot_policy_lwd.pusht "$OUT/demos.zarr" --out "$OUT/dataset"
common=(--steps="$STEPS" --batch_size="$BATCH" --num_workers=0 --dataset.repo_id=local/pusht --dataset.root="$OUT/dataset"
        --save_freq="$STEPS" --log_freq=200 --eval_freq=0 --wandb.enable=false --seed=0 --policy.device=cpu --policy.push_to_hub=false)
train() {  # name, policy args...
    local name=$1; shift
    test -e "$OUT/$name/checkpoints/last" || { /usr/bin/time -f "%e" -o "$OUT/$name.train_s" \
        $BIN/lerobot-train "$@" "${common[@]}" --output_dir="$OUT/$name" > "$OUT/$name.train.log" 2>&1; }
    $BIN/lerobot-eval --policy.path="$OUT/$name/checkpoints/last/pretrained_model" --policy.device=cpu --env.type=pusht \
        --env.obs_type=environment_state_agent_pos --eval.n_episodes="$EPISODES" --eval.batch_size=10 --seed=100000 \
        --output_dir="$OUT/$name.eval" > "$OUT/$name.eval.log" 2>&1
    $BIN/python lerobot_policy_lwd/benchmarks/latency.py "$OUT/$name/checkpoints/last/pretrained_model" \
        --out "$OUT/$name.latency.json" > "$OUT/$name.latency.log" 2>&1
}
train lwd --policy.type=lwd --policy.vae_steps="$VAE_STEPS" --policy.prior_steps=$((STEPS - VAE_STEPS))
train diffusion --policy.type=diffusion --policy.down_dims="$DP_DOWN_DIMS"
for name in lwd diffusion; do
    $BIN/python - "$OUT" "$name" <<'PY'
import json, sys
out, name = sys.argv[1:]
overall = json.load(open(f"{out}/{name}.eval/eval_info.json"))["overall"]
latency = json.load(open(f"{out}/{name}.latency.json"))
train_s = open(f"{out}/{name}.train_s").read().strip()
print(json.dumps({"policy": name, "success": overall["pc_success"] / 100, "score": overall["avg_max_reward"],
                  "episodes": overall["n_episodes"], "train_s": float(train_s), **latency}))
PY
done | tee "$OUT/summary.jsonl"
