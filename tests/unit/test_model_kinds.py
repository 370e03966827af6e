"""Model kinds: the registry, plugins through the ``shoal.models`` entry-point group, and the
compiler's checks of a kind (unknown, missing extra, a plugin's own config) at FILE:LINE:COL."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

import shoal
from shoal import extras
from shoal.models import Classifier, Generator, LabelScorer, ModelKind, kinds
from shoal.models.specs import OpenAIModelSpec, PluginModelSpec
from shoal.testing import FakeBackend, conformance

WriteYaml = Callable[..., Path]

PLUGIN = '''
import asyncio
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shoal import BackendTimeout
from shoal.models import Classifier, ModelKind


class FixedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["demo-fixed"]
    labels: list[str] = Field(min_length=2)
    favourite: str


class FixedClassifier:
    """Always the favourite label; keeps its time-out like a real backend."""

    def __init__(self, spec: FixedSpec) -> None:
        self.name = "demo-fixed"
        self._labels = tuple(spec.labels)
        self._favourite = spec.favourite

    @property
    def labels(self):
        return self._labels

    async def classify(self, texts, *, timeout_s=None):
        try:
            async with asyncio.timeout(timeout_s):
                out = []
                for _ in texts:
                    await asyncio.sleep(0)
                    out.append({label: float(label == self._favourite)
                                for label in self._labels})
                return out
        except TimeoutError:
            raise BackendTimeout(backend=self.name, timeout_s=timeout_s or 0.0) from None


def fixed_kind():
    return ModelKind(name="demo-fixed", spec=FixedSpec, protocols=(Classifier,),
                     build=lambda spec, base_dir: FixedClassifier(spec))


class SameSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["demo-object"]


SAME = ModelKind(name="demo-object", spec=SameSpec, protocols=(Classifier,),
                 build=lambda spec, base_dir: FixedClassifier(
                     FixedSpec(kind="demo-fixed", labels=["x", "y"], favourite="y")))
'''

ENTRY_POINTS = """\
[shoal.models]
demo-fixed = shoal_kind_demo:fixed_kind
demo-object = shoal_kind_demo:SAME
demo-broken = shoal_kind_demo:no_such_thing
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A real distribution on sys.path whose entry points add model kinds."""
    site = tmp_path / "site"
    pkg = site / "shoal_kind_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "shoal_kind_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-kind-demo\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    kinds.reset_plugin_cache()
    try:
        yield
    finally:
        for name in ("demo-fixed", "demo-object"):
            kinds.unregister_kind(name)
        sys.modules.pop("shoal_kind_demo", None)
        kinds.reset_plugin_cache()


@pytest.fixture
def registered() -> Iterator[Callable[[ModelKind[BaseModel]], None]]:
    """Register kinds directly for one test."""
    names: list[str] = []

    def add(kind: ModelKind[BaseModel]) -> None:
        kinds.register_kind(kind)
        names.append(kind.name)

    yield add
    for name in names:
        kinds.unregister_kind(name)


def errors_of(path: Path) -> list[str]:
    with pytest.raises(shoal.SpecError) as info:
        shoal.load_graph(path)
    return [str(issue) for issue in info.value.issues]


# --- a plugin's kind, end to end ------------------------------------------------------------


async def test_an_entry_point_kind_is_used_from_graph_yaml(plugin: None, write_yaml: WriteYaml):
    assert "demo-fixed" not in kinds._registry  # found lazily, on the first miss
    path = write_yaml("""
        shoal: 1
        name: plugin-demo
        models:
          triage: {kind: demo-fixed, labels: [billing, other], favourite: billing}
        nodes:
          triage: {agent: classifier, model: triage}
        """)
    graph = shoal.load_graph(path)
    assert isinstance(graph.spec.models["triage"], PluginModelSpec)
    result = await graph.arun("anything at all")
    assert result.status == "ok"
    assert result.nodes[0].label == "billing" and result.nodes[0].confidence == 1.0
    assert {"demo-fixed", "demo-object"} <= set(kinds.kind_names())
    # The plugin's backend keeps the same contract as the built-in ones.
    backend = graph.models["triage"]
    assert await conformance.validate(backend) == ["protocols", "classifier", "timeout",
                                                   "concurrency"]


def test_an_entry_point_may_name_the_kind_object_itself(plugin: None):
    kind = kinds.get_kind("demo-object")
    assert kind is not None and kind.protocols == (Classifier,)
    assert "demo-object" in kinds.kinds_serving(Classifier)


def test_a_plugin_kind_with_bad_config_is_reported_at_file_line_col(
    plugin: None, write_yaml: WriteYaml
):
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          triage:
            kind: demo-fixed
            labels: [billing]
            favourit: billing
        nodes:
          triage: {agent: classifier, model: triage}
        """)
    errors = errors_of(path)
    assert errors == [
        f"{path}:5:5: missing required key 'favourite' (models.triage)",
        f"{path}:6:13: List should have at least 2 items after validation, not 1 "
        "(models.triage.labels)",
        f"{path}:7:5: unknown key 'favourit' for model kind 'demo-fixed'; did you mean "
        "'favourite'? (models.triage.favourit)",
    ]


def test_a_plugin_that_fails_to_load_is_named(plugin: None, write_yaml: WriteYaml):
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          m: {kind: demo-broken}
        nodes:
          a: {agent: classifier, model: m}
        """)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:4:13: model kind 'demo-broken' failed to load from its "
                            "'shoal.models' entry point: AttributeError")


# --- the compiler's checks of a kind --------------------------------------------------------


def test_an_unknown_kind_is_reported_at_file_line_col_with_a_suggestion(write_yaml: WriteYaml):
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          big: {kind: llamacp, model: smollm2-135m-instruct}
        nodes:
          a: {agent: responder, model: big}
        """)
    [error] = errors_of(path)
    assert error == (f"{path}:4:15: unknown model kind 'llamacp'; did you mean 'llamacpp'? "
                     "(models.big.kind)")


def test_a_kind_whose_extra_is_missing_names_the_extra(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch,
    registered: Callable[[ModelKind[BaseModel]], None],
):
    monkeypatch.setitem(extras.EXTRAS, "demo-extra", ("shoal_no_such_module",))

    class NeedsSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["demo-needs"]

    registered(ModelKind(name="demo-needs", spec=NeedsSpec, protocols=(Generator,),
                         build=lambda spec, base_dir: FakeBackend(), extra="demo-extra"))
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          m:
            kind: demo-needs
        nodes:
          a: {agent: responder, model: m}
        """)
    [error] = errors_of(path)
    assert error == (f"{path}:5:11: model kind 'demo-needs' needs the extra [demo-extra] "
                     "(missing: shoal_no_such_module); pip install 'shoal[demo-extra]' "
                     "(models.m.kind)")


def test_the_planner_must_serve_generator_and_the_message_lists_the_kinds_that_do(
    write_yaml: WriteYaml, registered: Callable[[ModelKind[BaseModel]], None],
):
    class ChatSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["demo-chat"]

    registered(ModelKind(name="demo-chat", spec=ChatSpec, protocols=(Generator, LabelScorer),
                         build=lambda spec, base_dir: FakeBackend()))
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          clf: {kind: onnx-classifier, path: triage.onnx}
        nodes:
          a: {agent: noop}
        escalation: {planner: clf}
        """)
    [error] = errors_of(path)
    assert ("the planner 'clf' must be a Generator model (kind demo-chat or llamacpp or "
            "openai); onnx-classifier serves Classifier") in error


def test_a_remote_plugin_kind_is_behind_the_privacy_boundary(
    write_yaml: WriteYaml, registered: Callable[[ModelKind[BaseModel]], None],
):
    class CloudSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["demo-cloud"]
        region: str

    registered(ModelKind(name="demo-cloud", spec=CloudSpec, protocols=(Generator,),
                         build=lambda spec, base_dir: FakeBackend(replies=["hello"]),
                         remote=True))
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          cloud: {kind: demo-cloud, region: eu}
        nodes:
          reply: {agent: responder, model: cloud}
        """)
    [error] = errors_of(path)
    assert "sends its input to the remote model 'cloud'" in error
    assert kinds.is_remote({"kind": "demo-cloud"}) and not kinds.is_remote({"kind": "llamacpp"})


def test_a_plugin_spec_built_in_python_is_validated_into_its_kind_when_built(
    registered: Callable[[ModelKind[BaseModel]], None],
):
    class ChatSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["demo-py"]
        reply: str

    built: list[BaseModel] = []

    def build(spec: ChatSpec, base_dir: Path | None) -> FakeBackend:
        built.append(spec)
        return FakeBackend(replies=[spec.reply])

    registered(ModelKind(name="demo-py", spec=ChatSpec, protocols=(Generator,), build=build))
    spec = shoal.GraphSpec(
        name="g",
        models={"m": ChatSpec(kind="demo-py", reply="Thank you for your message.")},
        nodes={"a": shoal.NodeSpec(agent="responder", model="m")})
    assert isinstance(spec.models["m"], PluginModelSpec)
    result = shoal.Graph(spec).run("hello")
    assert result.output == "Thank you for your message."
    assert [type(s) for s in built] == [ChatSpec]
    bad = shoal.GraphSpec(name="g", models={"m": PluginModelSpec(kind="demo-py", reply=3)},
                          nodes={"a": shoal.NodeSpec(agent="responder", model="m")})
    with pytest.raises(shoal.SpecError, match=r"models\.m\.reply: Input should be a valid"):
        shoal.Graph(bad)


# --- the registry itself --------------------------------------------------------------------


def test_the_built_in_kinds_are_registered_with_what_they_serve():
    assert kinds.MODEL_KINDS == ("llamacpp", "onnx-classifier", "onnx-embedder", "openai")
    llama, openai = kinds.get_kind("llamacpp"), kinds.get_kind("openai")
    assert llama is not None and llama.extra == "llamacpp" and not llama.remote
    assert llama.protocols == (Generator, LabelScorer)
    assert openai is not None and openai.remote and openai.extra is None
    assert {"llamacpp", "openai"} <= set(kinds.kinds_serving(Generator))
    assert "onnx-classifier" not in kinds.kinds_serving(Generator)


def test_a_model_kind_checks_what_it_is_given():
    class Spec(BaseModel):
        kind: Literal["demo-a"]

    def build(spec: BaseModel, base_dir: Path | None) -> FakeBackend:
        return FakeBackend()

    with pytest.raises(TypeError, match=r"kind: Literal\['demo-b'\]"):
        ModelKind(name="demo-b", spec=Spec, protocols=(Generator,), build=build)
    with pytest.raises(TypeError, match="protocols must be one or more of"):
        ModelKind(name="demo-a", spec=Spec, protocols=(str,), build=build)
    with pytest.raises(ValueError, match="unknown extra 'nope'"):
        ModelKind(name="demo-a", spec=Spec, protocols=(Generator,), build=build, extra="nope")
    with pytest.raises(ValueError, match="must start with a letter"):
        ModelKind(name="-a", spec=Spec, protocols=(Generator,), build=build)
    kind = ModelKind(name="demo-a", spec=Spec, protocols=(Generator,), build=build)
    with pytest.raises(ValueError, match="already registered"):
        kinds.register_kind(ModelKind(name="openai", spec=OpenAIModelSpec,
                                      protocols=(Generator,), build=build))
    kinds.register_kind(kind)
    try:
        kinds.register_kind(kind)  # the same object again: a no-op
        assert kinds.get_kind("demo-a") is kind
    finally:
        kinds.unregister_kind("demo-a")
    with pytest.raises(ValueError, match="built in"):
        kinds.unregister_kind("openai")
