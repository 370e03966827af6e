"""The quickstart graph built in Python, with no YAML, plus a user agent of our own.

Run: python examples/quickstart/sdk.py
"""

from __future__ import annotations

import asyncio
import re

import shoal

URGENT = re.compile(r"\b(chest pain|can'?t breathe|overdose|bleeding)\b", re.IGNORECASE)


@shoal.agent("urgency_flag", labels={"urgent", "routine"})
async def urgency_flag(ctx: shoal.AgentContext) -> shoal.AgentResult:
    """A user agent: flags urgent wording. Registered by the decorator, used by name below."""
    urgent = bool(URGENT.search(ctx.text))
    return shoal.AgentResult(output=urgent, label="urgent" if urgent else "routine",
                             confidence=0.9 if urgent else 0.7)


spec = shoal.GraphSpec(
    name="quickstart-sdk",
    nodes={
        "flag": shoal.NodeSpec(agent="urgency_flag"),
        "urgent": shoal.NodeSpec(
            agent="template_reply",
            default="If this is an emergency, call 911 or go to the nearest emergency room now.",
        ),
        "triage": shoal.NodeSpec(
            agent="keyword_classifier",
            escalate_below=0.4,
            labels={
                "appointment": ["appointment", "reschedule", "book", "cancel"],
                "prescription_refill": ["refill", "prescription", "pharmacy"],
                "billing": ["bill", "invoice", "charge", "insurance"],
            },
        ),
        "reply": shoal.NodeSpec(
            agent="template_reply",
            from_node="triage",
            default="Thanks for your message. The care team will get back to you.",
            templates={
                "appointment": "You can reschedule from the patient portal.",
                "prescription_refill": "Refill requests go to your pharmacy.",
                "billing": "Our billing office will reply by email.",
            },
        ),
    },
    edges=[
        shoal.RouteEdge(source="flag", route={"urgent": "urgent", "default": "triage"}),
        shoal.ChainEdge.parse("triage -> reply"),
    ],
)


async def main() -> None:
    shoal.configure_logging("warning")  # JSON events on stderr; info would show every node
    graph = shoal.Graph(spec)
    print(f"graph {graph.name!r}: {len(spec.nodes)} nodes")
    async for event in graph.astream("Can I book an appointment for Monday?", id="sdk-1"):
        if isinstance(event, shoal.NodeEvent):
            print(f"  node {event.node:<7} label={event.label} confidence={event.confidence:.2f}")
        else:
            print(f"  -> {event.status}: {event.output}")
    results = await graph.abatch(
        [("sdk-2", "I have chest pain"), ("sdk-3", "Question about my bill"), ("sdk-4", "")],
        concurrency=2,
    )
    for r in results:
        detail = r.output if r.error is None else r.error.message
        print(f"  {r.id}: {r.status}: {detail}")


if __name__ == "__main__":
    asyncio.run(main())
