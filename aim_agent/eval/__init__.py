"""Evaluations of AIM: how its answers compare with references (dissection, synthetic neurons)."""
