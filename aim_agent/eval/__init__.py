"""Measuring whether AIM's descriptions are true: scoring labels against known answers.

- :mod:`aim_agent.eval.truth`: ground truth as unit sources offer it, and the words that name it;
- :mod:`aim_agent.eval.score`: strict concept match;
- :mod:`aim_agent.eval.judge`: an offline sentence embedder as a 2AFC judge, and retrieval;
- :mod:`aim_agent.eval.baselines`: labels made from exemplars alone (no experiments);
- :mod:`aim_agent.eval.dissect`, :mod:`aim_agent.eval.units`: a dissection reference for real units and
  ``aim eval units``;
- :mod:`aim_agent.eval.synthetic`: ``aim eval synthetic``, which runs the agent and the
  baselines on synthetic neurons and writes the tables.

The core reads units and answers only through the plugins' unit sources (hook ``aim_units``).
"""
