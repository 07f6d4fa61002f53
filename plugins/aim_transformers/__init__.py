"""Hugging Face transformers vision models (ResNet, ViT/DINO, CLIP vision) as AIM models."""
