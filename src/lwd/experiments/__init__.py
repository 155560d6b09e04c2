"""Experiments built on the Python API (`lwd.pipeline`): grids of methods x horizons x
perturbations (`bench`: `lwd bench`), whole comparisons from one spec, resumable, locally or on a
Ray cluster (`study`, `cluster`: `lwd study`), the intervals their tables report (`stats`) and the
push magnitude a study may fairly use (`calibrate`: `lwd calibrate`)."""
