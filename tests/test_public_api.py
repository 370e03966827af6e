"""The public surface: what users may import, kept sorted and importable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import shoal

PUBLIC_MODULES = ["shoal", "shoal.agents", "shoal.engines", "shoal.fhir", "shoal.graphs",
                  "shoal.models", "shoal.observability", "shoal.policies.escalation",
                  "shoal.policies.privacy", "shoal.policies.replies"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_importable(name: str):
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is listed but missing"


def test_top_level_surface_is_what_the_readme_promises():
    assert {"load_graph", "Graph", "GraphSpec", "NodeSpec", "agent", "AgentResult",
            "RunResult", "SpecError", "ShoalError"} <= set(shoal.__all__)


def test_error_tree():
    for cls in (shoal.SpecError, shoal.BackendError, shoal.AgentError,
                shoal.OutputValidationError, shoal.PolicyViolation, shoal.InputError):
        assert issubclass(cls, shoal.ShoalError)
    assert issubclass(shoal.BackendTimeout, shoal.BackendError)
    assert issubclass(shoal.BackendTimeout, TimeoutError)


def test_every_error_code_is_documented():
    from tests.conftest import REPO

    doc = (REPO / "docs" / "errors.md").read_text()
    for code in shoal.ErrorCode:
        assert f"`{code.value}`" in doc, code


def test_import_shoal_loads_no_model_library():
    code = ("import sys, shoal, shoal.models, shoal.testing; "
            "print(sorted(m for m in ('llama_cpp', 'onnxruntime', 'sklearn', 'skl2onnx', "
            "'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
