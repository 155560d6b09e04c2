"""Evaluation of a trained policy: the one evaluator every result comes from (`evaluate`: fixed
seeds, vector envs, perturbations, per-task success and cost), the replays and recordings built on
it (`video`, `rollouts`: `lwd eval --video/--rollouts`) and the wall-clock cost of a control step
(`latency`)."""
