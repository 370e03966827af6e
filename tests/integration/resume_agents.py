"""A deliberately slow agent for tests/integration/test_resume.py.

The ``shoal run`` subprocess finds it as a plugin: the test writes a ``*.dist-info`` with a
``shoal.agents`` entry point ``resume_slow = resume_agents:slow_echo`` and puts it and this
directory on ``PYTHONPATH`` (as tests/unit/test_agents.py does in-process with ``sys.path``).
"""

from __future__ import annotations

import asyncio

import shoal


class SlowEchoConfig(shoal.AgentConfig):
    delay_s: float = 0.05


@shoal.agent("resume_slow", config=SlowEchoConfig)
async def slow_echo(ctx: shoal.AgentContext, config: SlowEchoConfig) -> shoal.AgentResult:
    """Waits ``delay_s``, then answers with the record id (never the text)."""
    await asyncio.sleep(config.delay_s)
    return shoal.AgentResult(output=f"done {ctx.record_id}")
