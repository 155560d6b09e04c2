"""Deployment: a trained run of a weight-generating method as files for a robot without torch
(`export`: npz + `numpy_controller`, the method's own formats; `export_c`: C99), the check that
what ships behaves as what was trained (`exported`: `lwd eval --exported`), and the two-rate
control loop that runs them (`runtime`)."""
