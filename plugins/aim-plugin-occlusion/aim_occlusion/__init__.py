"""Occlusion sensitivity as an AIM tool: which part of an image does the unit need?"""

from aim_occlusion.occlusion import OcclusionInput, OcclusionOutput, occlusion_map

__all__ = ["OcclusionInput", "OcclusionOutput", "occlusion_map"]
