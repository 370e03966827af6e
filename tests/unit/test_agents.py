"""The agent registry, the decorator, entry-point plugins and the built-in rule agents."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import shoal
from shoal.agents import base
from shoal.agents.builtin import KeywordClassifier, KeywordClassifierConfig


def ctx(text: str, results: dict[str, shoal.AgentResult] | None = None) -> shoal.AgentContext:
    return shoal.AgentContext(node="n", run_id="r", record_id="i", text=text,
                              results=results or {})


def test_decorated_class_is_registered_and_runs():
    @shoal.agent("t_upper")
    class Upper(shoal.Agent):
        async def run(self, ctx: shoal.AgentContext) -> shoal.AgentResult:
            return shoal.AgentResult(output=ctx.text.upper())

    assert base.get_agent("t_upper") is Upper
    g = shoal.Graph(shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_upper")}))
    assert g.run("hi").output == "HI"


def test_function_agent_gets_its_validated_config():
    class Cfg(shoal.AgentConfig):
        suffix: str

    @shoal.agent("t_suffix", config=Cfg)
    async def suffix(ctx: shoal.AgentContext, cfg: Cfg) -> shoal.AgentResult:
        return shoal.AgentResult(output=ctx.text + cfg.suffix)

    spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_suffix", suffix="!")})
    assert shoal.Graph(spec).run("hi").output == "hi!"
    bad = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_suffix", sufix="!")})
    with pytest.raises(shoal.SpecError, match="unknown key 'sufix' for agent 't_suffix'"):
        shoal.Graph(bad)


def test_name_clash_is_refused_and_sync_functions_are_refused():
    @shoal.agent("t_once")
    async def once(ctx: shoal.AgentContext) -> shoal.AgentResult:
        return shoal.AgentResult()

    with pytest.raises(ValueError, match="already registered"):
        @shoal.agent("t_once")
        async def again(ctx: shoal.AgentContext) -> shoal.AgentResult:
            return shoal.AgentResult()

    with pytest.raises(TypeError, match="async function"):
        shoal.agent("t_sync")(lambda ctx: None)


def test_agent_result_bounds_confidence():
    with pytest.raises(ValueError, match="less than or equal to 1"):
        shoal.AgentResult(confidence=1.5)


def test_entry_point_plugin_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pkg = tmp_path / "shoal_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import shoal

        class Reverse(shoal.Agent):
            async def run(self, ctx):
                return shoal.AgentResult(output=ctx.text[::-1])
        """))
    dist = tmp_path / "shoal_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-plugin-demo\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[shoal.agents]\nreverse = shoal_plugin_demo:Reverse\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base.reset_plugin_cache()
    try:
        assert "reverse" in base.agent_names()
        spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="reverse")})
        assert shoal.Graph(spec).run("abc").output == "cba"
    finally:
        base._registry.pop("reverse", None)
        sys.modules.pop("shoal_plugin_demo", None)
        base.reset_plugin_cache()


async def test_keyword_classifier_is_confident_only_with_evidence():
    cfg = KeywordClassifierConfig(labels={"billing": ["bill", "invoice"],
                                          "appointment": ["appointment"]})
    agent = KeywordClassifier(cfg, node="n")
    strong = await agent.run(ctx("bill, invoice, another bill"))
    weak = await agent.run(ctx("my bill and my appointment"))
    none = await agent.run(ctx("hello"))
    assert strong.label == "billing" and weak.label in {"billing", "appointment"}
    assert strong.confidence > weak.confidence > none.confidence
    assert none.label == "other"
    assert KeywordClassifier.labels(cfg) == {"billing", "appointment", "other"}


def test_keyword_classifier_rejects_a_bad_pattern():
    with pytest.raises(ValueError, match="bad pattern"):
        KeywordClassifierConfig(labels={"x": ["(unclosed"]})


async def test_template_reply_uses_the_named_nodes_label():
    from shoal.agents.builtin import TemplateReply, TemplateReplyConfig

    cfg = TemplateReplyConfig(templates={"billing": "Billing replies soon."}, default="Thanks.",
                              from_node="triage")
    agent = TemplateReply(cfg, node="n")
    hit = await agent.run(ctx("x", {"triage": shoal.AgentResult(label="billing")}))
    miss = await agent.run(ctx("x", {"triage": shoal.AgentResult(label="other")}))
    assert hit.output == "Billing replies soon." and hit.confidence == 1.0
    assert miss.output == "Thanks." and miss.confidence < 1.0
