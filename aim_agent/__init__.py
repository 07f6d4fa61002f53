"""AIM: Automated Interpretability Modelling."""
