"""The offline scientist for model-level task questions (hook ``aim_task_scientists``): spurious units and
class biases. Each answer comes from experiments on the unit (:mod:`.spurious`, :mod:`.bias`)."""

from __future__ import annotations

from aim_agent.eval.tasks import TaskAnswer, TaskQuestion


class OfflineTaskScientist:
    """``--backend offline`` for ``aim eval spurious`` and ``aim eval bias``: deterministic, no VLM."""

    name = "offline"

    def answer(self, question: TaskQuestion) -> TaskAnswer:
        from aim_world.scientist.bias import answer_bias
        from aim_world.scientist.spurious import answer_spurious

        if question.task == "spurious":
            return answer_spurious(question)
        if question.task == "bias":
            return answer_bias(question)
        raise ValueError(f"unknown task {question.task!r}; the offline scientist answers: spurious, bias")
