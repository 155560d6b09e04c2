"""Readers and writers for other projects' dataset formats (Diffusion Policy zarr, robomimic HDF5)."""
