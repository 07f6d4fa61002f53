"""``aim sweep``: one interpretation run per unit of a layer, as Ray jobs, resumable, with a browsable index.

- :mod:`~aim_agent.sweep.engine`: run a callable over unit jobs on Ray actors (or inline), with
  per-job timeouts, failures recorded, budgets and progress hooks; generic (the evaluations use it).
- :mod:`~aim_agent.sweep.worker`: what one worker does (models opened once; one run per unit).
- :mod:`~aim_agent.sweep.store`: ``DIR/sweep.sqlite``, one row per unit, written as units finish.
- :mod:`~aim_agent.sweep.run`: :func:`run_sweep`, the whole sweep; :mod:`~aim_agent.sweep.index`:
  ``DIR/index.html``; :mod:`~aim_agent.sweep.export`: csv / parquet.

See docs/scale.md. Nothing is imported here, so that building the ``aim`` parser stays cheap: import
from the modules (``from aim_agent.sweep.run import SweepPlan, run_sweep``).
"""
