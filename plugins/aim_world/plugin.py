"""The world as an AIM plugin: generator, editor, describer, world models, synthetic neurons (the
shipped set ``synthetic`` and the seeded ``fresh`` ones), the offline scientist, the exemplar
dataset, ``aim world ...`` and ``aim bench world``.

Imports are deferred to the hooks so that loading the plugin costs nothing until used.
"""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_text2image() -> list[Any]:
    from aim_world.providers import WorldTextToImage

    return [WorldTextToImage]


@hookimpl
def aim_image_editors() -> list[Any]:
    from aim_world.providers import WorldEditor

    return [WorldEditor]


@hookimpl
def aim_describers() -> list[Any]:
    from aim_world.providers import WorldDescriber

    return [WorldDescriber]


@hookimpl
def aim_model_loaders() -> list[Any]:
    # world-cnn, world-cnn-spawrious, world-cnn-bias; and, outside the LoadedModel protocol,
    # `loader.probe("synthetic", "neurons")` for the synthetic neurons.
    from aim_world.cnn import WorldModelLoader

    return [WorldModelLoader()]


@hookimpl
def aim_datasets() -> list[Any]:
    from aim_world.datasets import WorldDataset

    return [WorldDataset()]


class OfflineScientistFactory:
    """The rule-based offline scientist (``--backend offline``): no VLM, no network, deterministic."""

    name = "offline"

    def make(self, config: Any, runtime: Any) -> Any:
        from aim_world.scientist import OfflineScientist

        return OfflineScientist()


@hookimpl
def aim_scientists() -> list[Any]:
    return [OfflineScientistFactory()]


@hookimpl
def aim_units() -> list[Any]:
    from aim_world.fresh import FreshNeurons
    from aim_world.units import SyntheticNeurons

    return [SyntheticNeurons(), FreshNeurons()]


@hookimpl
def aim_cli_commands() -> list[Any]:
    from aim_world import cli

    return [cli]


@hookimpl
def aim_benchmarks() -> list[Any]:
    from aim_world import bench

    return [bench]


@hookimpl
def aim_vocabularies() -> list[Any]:
    from aim_world.concept_vocabulary import WorldVocabulary

    return [WorldVocabulary()]


@hookimpl
def aim_eval_tasks() -> list[Any]:
    from aim_world.tasks import BiasTask, SpuriousTask

    return [SpuriousTask(), BiasTask()]


@hookimpl
def aim_task_scientists() -> list[Any]:
    from aim_world.scientist.tasks import OfflineTaskScientist

    return [OfflineTaskScientist()]
