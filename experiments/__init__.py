"""Experiment configs: each module's `get_config()` returns an ml_collections.ConfigDict.

Use with `python -m pix2pitch_jax.train --config=experiments/<name>.py`, or import them
(`from experiments import demo`) to derive configs in code and tests.
"""
