#!/usr/bin/env bash
# PushT deployment checks of issue 16 (and PushT reconstruction / latent map of issue 15), on one
# seed-0 model per method, one thread per process. Every step skips what its output already holds,
# so the script resumes where it stopped.
#   OMP_NUM_THREADS=1 bash benchmarks/pusht_deploy.sh
set -euo pipefail
R=benchmarks/results
LWD=runs/pusht-lwd-s0
DP=runs/pusht-dp-Ta16-s0
mkdir -p $R/generation-delay $R/reconstruct $R/exported docs
[ -e data/pusht-200.zarr ] || lwd demos pusht --episodes 200 --out data/pusht-200.zarr
[ -e $LWD/model.safetensors ] || lwd train lwd --data data/pusht-200.zarr --out $LWD --preset pusht --seed 0 \
    $([ -e $LWD/train_state ] && echo --resume)
# success against generation delay K = 0..8: a delay must stay below the regeneration interval, so
# LWD regenerates every 16 steps (its training H) and DP replans every Ta = 16 steps (T = 28, so a
# plan also covers the next plan's 8-step delay: To - 1 + Ta + K <= T)
for K in 0 1 2 4 8; do
  out=$R/generation-delay/pusht-lwd-H16-k$K.json
  [ -e $out ] || lwd eval $LWD --action-horizon 16 --generation-delay $K --episodes 50 --n-envs 10 --vector sync --out $out
done
# the exported files (generator.onnx + lwd_controller.py) against the library (= pusht-lwd-H16-k0.json), same seeds
EXP=runs/pusht-lwd-s0-exported
[ -e $EXP/generator.onnx ] || { lwd export $LWD --format npz --out $EXP && lwd export $LWD --format onnx --out $EXP; }
[ -e $R/exported/pusht-lwd-s0-H16-exported.json ] || lwd eval $LWD --action-horizon 16 --episodes 50 --n-envs 10 --vector sync --exported $EXP --out $R/exported/pusht-lwd-s0-H16-exported.json
# success against FLOPs per control step (DDIM steps x regeneration interval)
python benchmarks/generation_cost.py $LWD --horizons 8,16,32,episode --inference-steps 1,2,5,10 --episodes 50 --n-envs 1 \
    --out $R/generation-cost-pusht.json
# behaviour reconstruction on held-out demos, and the latent map
[ -e data/pusht-heldout-5000.zarr ] || lwd demos pusht --episodes 30 --seed-start 5000 --out data/pusht-heldout-5000.zarr
[ -e $R/reconstruct/pusht-lwd-s0.json ] || lwd reconstruct $LWD --data data/pusht-heldout-5000.zarr --episodes 30 --out $R/reconstruct/pusht-lwd-s0.json
[ -e docs/latents-pusht.png ] || lwd latents $LWD --data data/pusht-heldout-5000.zarr --out docs/latents-pusht.png
# Diffusion Policy (cpu preset, Ta = 16, T = 28) under the same delays, with DDIM-10 (DDPM-100 costs 10x the time)
[ -e $DP/model.safetensors ] || lwd train dp --data data/pusht-200.zarr --out $DP --preset cpu --seed 0 \
    --set horizon=28 --set action_steps=16 $([ -e $DP/train_state ] && echo --resume)
for K in 0 1 2 4 8; do
  out=$R/generation-delay/pusht-dp-Ta16-ddim10-k$K.json
  [ -e $out ] || lwd eval $DP --sampler ddim --inference-steps 10 --generation-delay $K --batch-plans --episodes 50 --n-envs 10 --vector sync --out $out
done
echo "pusht_deploy: done"
