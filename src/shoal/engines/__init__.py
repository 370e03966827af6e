"""Engines that run a graph beyond one process: batches on Ray (:func:`run_on_ray`)."""

from __future__ import annotations

from shoal.engines.ray_batch import RayOptions, connect, disconnect, load_checked, run_on_ray

__all__ = ["RayOptions", "connect", "disconnect", "load_checked", "run_on_ray"]
