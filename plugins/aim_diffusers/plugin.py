"""Registers the diffusers providers (imported only when used)."""
