"""Training: the one loop every method's stages run in (`train`), the EMA of weights (`ema`), the
lock on a run directory while it trains (`runlock`) and where it runs: device, precision, threads
and the DDP process group, which a distributed evaluation shares (`hardware`)."""
