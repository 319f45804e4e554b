"""Tracking: MLflow experiments and runs.

``store`` resolves the tracking URI and logs runs with retries; ``python -m
crossmod.tracking.experiments`` creates the experiments once, up front, and
``crossmod.tracking.track`` logs a split's trained networks, one run each.
"""
