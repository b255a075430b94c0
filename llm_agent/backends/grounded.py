"""The default backend: every question answered by calling its tool directly.

Offline and deterministic, so the same complaint always gets the same report; root cause
and summary are left to the rules and the writer, which only use the tools' facts.
"""

from __future__ import annotations

from llm_agent.backends.base import Backend, BackendOutput, Task, ToolCall
from llm_agent.evidence import EvidenceFile
from llm_agent.planner import Answer, Question
from llm_agent.tools import ToolRegistry, ToolResult


def answer_from(question: Question, result: ToolResult) -> Answer:
    status = {"ok": "answered", "unavailable": "unavailable"}.get(result.status, "error")
    value = result.data.get(question.fact) if result.status == "ok" else None
    return Answer(
        question_id=question.id,
        fact=question.fact,
        value=value,
        text=result.summary,
        status=status,
        citations=result.citations,
        source=f"tool:{result.tool}",
    )


def tool_answers(task: Task, tools: ToolRegistry, evidence: EvidenceFile) -> tuple[list[Answer], list[ToolCall]]:
    """Answer each question with its tool, calling each (tool, args) once."""
    results: dict[str, ToolResult] = {}
    calls, answers = [], []
    for q in task.questions:
        key = f"{q.tool}:{sorted(q.args.items())}"
        if key not in results:
            results[key] = tools.call(evidence, q.tool, q.args)
            calls.append(ToolCall.of(q.tool, q.args, results[key]))
        answers.append(answer_from(q, results[key]))
    return answers, calls


class GroundedBackend(Backend):
    name = "grounded"
    model = "tools"

    def __init__(self, retries: int = 0, backoff_s: float = 0.0) -> None:
        super().__init__(retries=retries, backoff_s=backoff_s)

    def _investigate(self, task: Task, tools: ToolRegistry, evidence: EvidenceFile) -> BackendOutput:
        answers, calls = tool_answers(task, tools, evidence)
        return BackendOutput(backend=self.name, model=self.model, answers=answers, tool_calls=calls)
