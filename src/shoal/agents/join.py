"""``reply_join``: one reply to a message with several requests, from the replies of its steps.

Runs once after the steps of a splitter (``steps_from``) ran (:mod:`shoal.graphs.steps`): for
each step it takes the reply of the first of ``replies`` that answered it (``answer[2]``: the
node ``answer`` on step 2) and joins them, the labels in ``first`` (emergency) leading, the
rest in the order the sender wrote them. The output keeps each part's reply apart (``parts``)
next to the joined ``answer``, and, when every part came from a reviewed template, the
templates and the sentences a model added (``personal``) as a responder's output does, so the
compliance checker reads it as it reads any reply.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.agents.plans import step_key, steps_of
from shoal.errors import AgentError

__all__ = ["JoinConfig", "ReplyJoin"]


class JoinConfig(AgentConfig):
    steps_from: str
    """The splitter node whose steps ran."""
    replies: list[str] = Field(min_length=1)
    """The nodes whose output is a step's reply (where the steps' chains end)."""
    first: list[str] = Field(default_factory=list)
    """Labels whose replies lead (emergency: the 911 sentence comes before anything else)."""
    separator: str = "\n\n"


class ReplyJoin(Agent):
    """Joins the replies of a message's steps into one."""

    name = "reply_join"
    Config = JoinConfig
    config: JoinConfig

    async def run(self, ctx: AgentContext) -> AgentResult:
        source = ctx.results.get(self.config.steps_from)
        steps = steps_of(source)
        if source is None or not steps:
            raise AgentError(f"node {self.config.steps_from!r} made no steps in this run",
                             node=self.node, agent=self.name)
        parts: list[dict[str, Any]] = []
        for step in steps:
            index = step["index"]
            found = next(((n, ctx.results[step_key(n, index)]) for n in self.config.replies
                          if step_key(n, index) in ctx.results), None)
            if found is None:
                raise AgentError(f"step {index} ({step['label']}) has no reply from "
                                 f"{' or '.join(self.config.replies)}", node=self.node,
                                 agent=self.name)
            node, result = found
            reply = result.output
            text = reply if isinstance(reply, str) else (
                reply.get("answer") if isinstance(reply, Mapping) else None)
            if not isinstance(text, str) or not text.strip():
                raise AgentError(f"step {index}: the reply of {node!r} holds no text",
                                 node=self.node, agent=self.name)
            closing = reply.get("closing") if isinstance(reply, Mapping) else None
            parts.append({"index": index, "label": step["label"], "node": node,
                          "answer": text.strip(),
                          "closing": closing if isinstance(closing, str) else "",
                          "template": reply.get("template") if isinstance(reply, Mapping)
                          else None,
                          "personal": reply.get("personal") if isinstance(reply, Mapping)
                          else None})
        first = {label: i for i, label in enumerate(self.config.first)}
        ordered = sorted(parts, key=lambda p: (first.get(p["label"], len(first)), p["index"]))
        joined: dict[str, Any] = {"answer": _join([p["answer"] for p in ordered],
                                                  self.config.separator,
                                                  [p["closing"] for p in ordered]),
                                  "parts": ordered}
        if all(p["template"] for p in ordered):
            joined["template"] = "+".join(p["template"] for p in ordered)
            personal = [p["personal"] for p in ordered if isinstance(p["personal"], str)]
            joined["personal"] = " ".join(personal) if personal else None
        return AgentResult(output=joined, label=source.label, confidence=1.0,
                           reason=f"joined {len(ordered)} step replies")


def _join(answers: list[str], separator: str, closings: list[str] | None = None) -> str:
    """The replies one after the other, with what they share said once: one greeting (the one
    that names the sender when one does) where the first greeting was, and at the very end the
    closing lines: a template's footer (``closings``, from the responder) and a last line that
    ends several of them. A footer left between two replies would read as the end of the
    message."""
    paragraphs = [[p.strip() for p in a.split("\n\n") if p.strip()] for a in answers]
    greetings = {ps[0] for ps in paragraphs if len(ps) > 1 and _is_greeting(ps[0])}
    greeting = max(sorted(greetings), key=len) if greetings else None
    tails = [ps[-1] for ps in paragraphs if len(ps) > 1]
    footers = {c.strip() for c in closings or [] if c.strip()}
    closing = [p for p in dict.fromkeys(tails) if tails.count(p) > 1 or p in footers]
    out: list[str] = []
    for ps in paragraphs:
        for i, p in enumerate(ps):
            if p in closing and i == len(ps) - 1:
                continue
            if i == 0 and p in greetings:
                if greeting is not None:
                    out.append(greeting)
                    greeting = None
                continue
            out.append(p)
    return separator.join([*out, *closing])


def _is_greeting(paragraph: str) -> bool:
    """A short opening line that ends with a comma: ``Hello Maria,``."""
    return paragraph.endswith(",") and len(paragraph.split()) <= 6


register(ReplyJoin.name, ReplyJoin)
