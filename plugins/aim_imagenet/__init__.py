"""ImageNet for AIM: EfficientNet-Lite models, photo datasets, a blind photo tagger and a WordNet vocabulary."""
