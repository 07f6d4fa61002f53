"""ImageNet as an AIM plugin: EfficientNet-Lite0/Lite2 models, the sample photos as datasets, a blind photo
tagger (describer) and the WordNet concept vocabulary.

Imports are deferred to the hooks: loading the plugin reads no weights and imports no torch model code.
"""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_model_loaders() -> list[Any]:
    from aim_imagenet.models import EfficientNetLiteLoader

    return [EfficientNetLiteLoader()]


@hookimpl
def aim_vocabularies() -> list[Any]:
    from aim_imagenet.vocabulary import WordNetVocabulary

    return [WordNetVocabulary()]


@hookimpl
def aim_datasets() -> list[Any]:
    from aim_imagenet.photos import photo_datasets

    return list(photo_datasets())


@hookimpl
def aim_cli_commands() -> list[Any]:
    from aim_imagenet import cli

    return [cli]


@hookimpl
def aim_describers() -> list[Any]:
    # photo-tagger-lite2 (= photo-tagger) describes for a study of Lite0; photo-tagger-lite0 for a study of Lite2
    from aim_imagenet.tagger import photo_taggers

    return list(photo_taggers())


@hookimpl
def aim_benchmarks() -> list[Any]:
    from aim_imagenet import bench

    return [bench]
