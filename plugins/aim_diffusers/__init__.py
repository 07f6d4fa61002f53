"""diffusers pipelines (Stable Diffusion, InstructPix2Pix, FLUX-Kontext) as AIM providers."""
