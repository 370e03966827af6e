"""Bad input through the user-facing entry points (`shoal run`, `shoal validate`,
`shoal.load_graph`, `Graph.abatch`): each gives a clear error naming its place (FILE:LINE for JSONL
and YAML, the record id, the model file) and every other record of the batch still comes back.

Everything is generated in ``tmp_path`` at test time. Planner faults are injected with
FakeOpenAIServer (fault injection only); tests that load real weights (GGUF, spaCy) are ``slow``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import shoal
from shoal.cli import app
from tests.conftest import REPO
from tests.integration.fake_openai import FakeResponse, completion, error, fake_openai

pytestmark = [pytest.mark.integration]

slow = pytest.mark.slow
runner = CliRunner()
TRIAGE_MODEL = REPO / "examples" / "healthcare" / "models" / "triage.onnx"
CANARY = "Canaryquill"
"""Put into bad records' text: no error message may quote it."""

KEYWORD_GRAPH = """\
shoal: 1
name: {name}
nodes:
  triage:
    agent: keyword_classifier
    default: other
    labels:
      billing: [bill, invoice]
      emergency: ["chest pain", bleeding]
  reply:
    agent: template_reply
    from_node: triage
    default: "Thanks, the care team will reply."
    templates: {{billing: "Billing will reply by email."}}
edges:
  - triage -> reply
"""

MASK_GRAPH = """\
shoal: 1
name: mask-only
nodes:
  mask: {agent: privacy_masker}
"""


@pytest.fixture(autouse=True)
def _outbox_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A graph with a planner may queue escalations; never in the working directory.
    monkeypatch.setenv("SHOAL_OUTBOX", str(tmp_path / "outbox.sqlite"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _keyword_graph(tmp_path: Path, name: str = "graph.yaml") -> Path:
    return _write(tmp_path / name, KEYWORD_GRAPH.format(name=Path(name).stem))


def _clean_exit(result: Result) -> None:
    """The CLI exited on its own terms: no exception of its own escaped, no traceback printed."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError("the CLI crashed:\n" + "".join(traceback.format_exception(exc)))
    assert "Traceback" not in result.output


def _run_file(
    graph: Path, src: Path, out: Path, *extra: str
) -> tuple[Result, list[dict[str, Any]]]:
    result = runner.invoke(app, ["run", str(graph), "--input", str(src), "--output", str(out),
                                 "--no-progress", "--concurrency", "2", *extra])
    _clean_exit(result)
    rows = ([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
            if out.exists() else [])
    return result, rows


# --- JSONL through `shoal run --input` ----------------------------------------------------------

GOOD_FIRST = b'{"id": "a", "text": "my bill is wrong"}'
GOOD_LAST = b'{"id": "z", "text": "chest pain since this morning"}'

BAD_LINES = [
    pytest.param(b'{"id": "rec-empty", "text": ""}', "rec-empty", "'text' is empty",
                 id="empty-text"),
    pytest.param(b'{"id": "rec-ws", "text": " \\t\\n\\r\\u00a0\\u2003 "}', "rec-ws",
                 "'text' is empty", id="whitespace-only-text"),
    pytest.param(b'{"id": "rec-latin1", "text": "caf\xe9 ' + CANARY.encode() + b'"}', "line-2",
                 "not valid UTF-8", id="invalid-utf8-bytes"),
    pytest.param(b"\x00\x01\x02\x03\xfe\xff\x7f\x89PNG\x1a\x00" + CANARY.encode(), "line-2",
                 "not valid UTF-8", id="binary-line"),
    pytest.param(b"\x00\x00\x00\x00\x01\x02" + CANARY.encode(), "line-2", "not valid JSON",
                 id="nul-bytes-line"),
    pytest.param(b"this is not json " + CANARY.encode(), "line-2", "not valid JSON",
                 id="non-json-line"),
    pytest.param(b'{"id": "rec-cut", "text": "half a record ' + CANARY.encode(), "line-2",
                 "not valid JSON", id="cut-off-json"),
    pytest.param(b'["rec-array", "' + CANARY.encode() + b'"]', "line-2",
                 "expected a JSON object, got list", id="json-array"),
    pytest.param(b"42", "line-2", "expected a JSON object, got int", id="json-number"),
    pytest.param(b'"' + CANARY.encode() + b'"', "line-2", "expected a JSON object, got str",
                 id="json-string"),
    pytest.param(b"null", "line-2", "expected a JSON object, got NoneType", id="json-null"),
    pytest.param(b'{"id": "rec-notext", "body": "' + CANARY.encode() + b'"}', "rec-notext",
                 "missing 'text'", id="missing-text"),
    pytest.param(b'{"id": "rec-num", "text": 42}', "rec-num", "'text' must be a string, got int",
                 id="number-text"),
    pytest.param(b'{"id": "rec-list", "text": ["' + CANARY.encode() + b'"]}', "rec-list",
                 "'text' must be a string, got list", id="list-text"),
    pytest.param(b'{"id": "rec-null", "text": null}', "rec-null",
                 "'text' must be a string, got NoneType", id="null-text"),
    pytest.param(b'{"id": {"x": 1}, "text": "' + CANARY.encode() + b'"}', "line-2",
                 "'id' must be a string or an integer", id="object-id"),
    pytest.param(b'{"id": "a", "text": "duplicate ' + CANARY.encode() + b'"}', "a",
                 "duplicate id (first at line 1)", id="duplicate-id"),
]


@pytest.mark.parametrize(("line", "record_id", "problem"), BAD_LINES)
def test_a_bad_jsonl_line_is_named_by_file_and_line_and_the_rest_run(
    tmp_path: Path, line: bytes, record_id: str, problem: str
):
    graph = _keyword_graph(tmp_path)
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join([GOOD_FIRST, line, GOOD_LAST]) + b"\n")
    result, rows = _run_file(graph, src, tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in rows] == ["a", record_id, "z"]
    bad = rows[1]
    assert bad["status"] == "error" and bad["error"]["code"] == "input_invalid"
    assert bad["error"]["message"].startswith(f"{src}:2: "), bad["error"]
    assert problem in bad["error"]["message"]
    assert CANARY not in bad["error"]["message"] and CANARY not in result.output
    assert [rows[0]["status"], rows[2]["status"]] == ["ok", "ok"]
    assert rows[0]["output"] == "Billing will reply by email."
    # --fail-on-error turns the bad line into exit 1, still after every record ran.
    failed, again = _run_file(graph, src, tmp_path / "again.jsonl", "--fail-on-error")
    assert failed.exit_code == 1
    assert [r["status"] for r in again] == ["ok", "error", "ok"]


@pytest.mark.parametrize(("line", "record_id"), [
    pytest.param(b'{"id": "rec-empty", "text": ""}', "rec-empty", id="empty-text"),
    pytest.param(b'{"id": "rec-ws", "text": "  \\t "}', "rec-ws", id="whitespace-only-text"),
    pytest.param(b'{"id": "rec-notext"}', "rec-notext", id="missing-text"),
    pytest.param(b'{"id": "rec-num", "text": 7}', "rec-num", id="number-text"),
    pytest.param(b'{"id": "a", "text": "again"}', "a", id="duplicate-id"),
])
def test_a_bad_jsonl_line_with_an_id_names_the_id_in_its_message(
    tmp_path: Path, line: bytes, record_id: str
):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join([GOOD_FIRST, line, GOOD_LAST]) + b"\n")
    _, rows = _run_file(_keyword_graph(tmp_path), src, tmp_path / "out.jsonl")
    message = rows[1]["error"]["message"]
    assert message.startswith(f"{src}:2: ")
    assert repr(record_id) in message, message


def test_windows_line_endings_are_read_like_unix_ones(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "my bill"}\r\n'
                    b"\r\n"
                    b'{"id": "b", "text": "chest pain"}\r\n'
                    b"not json\r\n"
                    b'{"id": "c", "text": "hello"}')  # no line ending at all at the end
    result, rows = _run_file(_keyword_graph(tmp_path), src, tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in rows] == ["a", "b", "line-4", "c"]
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    assert rows[2]["error"]["message"].startswith(f"{src}:4: not valid JSON")
    assert [r["nodes"][0]["label"] for r in (rows[0], rows[1], rows[3])] == [
        "billing", "emergency", "other"]


@pytest.mark.parametrize("content", [b"", b"\n\n   \r\n\t\n"], ids=["empty", "blank-lines-only"])
def test_an_input_file_without_records_runs_nothing_and_does_not_crash(
    tmp_path: Path, content: bytes
):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    result, rows = _run_file(_keyword_graph(tmp_path), src, out, "--fail-on-error")
    assert result.exit_code == 0, result.output
    assert out.is_file() and rows == []


@pytest.mark.parametrize("content", [b"", b"\n\n   \r\n\t\n"], ids=["empty", "blank-lines-only"])
def test_an_input_file_without_records_is_reported_naming_the_file(
    tmp_path: Path, content: bytes
):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    result, _ = _run_file(_keyword_graph(tmp_path), src, tmp_path / "out.jsonl")
    said = [line for line in result.stderr.splitlines() if str(src) in line]
    assert any(re.search(r"no records|no input|empty", line) for line in said), result.stderr


@slow
def test_one_megabyte_text_is_masked_whole_and_the_record_is_ok(tmp_path: Path):
    graph = _write(tmp_path / "mask.yaml", MASK_GRAPH)
    filler = "The patient reports mild fatigue and was advised to rest and hydrate. "
    note = "Patient Jane Canarysmith, MRN 88877766, phone 555-201-3344, email jc@example.org."
    big = (filler * (1_000_000 // len(filler) + 1))[:1_000_000].rstrip() + " " + note
    assert len(big) > 1_000_000
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "small", "text": "Call John Smith at 555-201-3344."},
        {"id": "big", "text": big},
        {"id": "after", "text": "Email jane.roe@example.org about my bill."},
    ]) + "\n", encoding="utf-8")
    result, rows = _run_file(graph, src, tmp_path / "out.jsonl", "--fail-on-error")
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["status"]) for r in rows] == [("small", "ok"), ("big", "ok"),
                                                      ("after", "ok")]
    masked = rows[1]["output"]["masked"]
    for canary in ("Canarysmith", "88877766", "555-201-3344", "jc@example.org"):
        assert canary not in masked
    assert masked.startswith(big[:200])  # nothing cut from the front...
    assert masked.count("[") >= 4 and masked.endswith(".")  # ...and the tail was scanned
    assert "jane.roe@example.org" not in rows[2]["output"]["masked"]


@slow
def test_an_escaped_lone_surrogate_is_invalid_input_named_by_file_and_line(tmp_path: Path):
    graph = _write(tmp_path / "mask.yaml", MASK_GRAPH)
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "Call John Smith at 555-201-3344."}\n'
                    b'{"id": "sur", "text": "broken \\ud800 text from ' + CANARY.encode()
                    + b'"}\n{"id": "z", "text": "Email jane.roe@example.org today."}\n')
    result, rows = _run_file(graph, src, tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["status"]) for r in rows] == [("a", "ok"), ("sur", "error"),
                                                      ("z", "ok")]
    assert rows[1]["error"]["code"] == "input_invalid"
    assert rows[1]["error"]["message"].startswith(f"{src}:2: ")


# --- records through Graph.abatch ---------------------------------------------------------------


async def test_abatch_bad_records_come_back_named_by_id_and_the_rest_run(tmp_path: Path):
    graph = shoal.load_graph(_keyword_graph(tmp_path))
    items: list[Any] = [
        ("a", "my bill is wrong"),
        ("rec-empty", ""),
        ("rec-ws", " \t\n\r\u00a0\u2003 "),
        {"id": "rec-notext", "body": CANARY},
        {"id": "rec-num", "text": 42},
        ("rec-bytes", b"caf\xe9 " + CANARY.encode()),
        42,
        ["rec-list", CANARY],
        CANARY,
        shoal.Record(id="z", text="chest pain since this morning"),
    ]
    results = await graph.abatch(items, concurrency=3)
    assert [r.id for r in results] == ["a", "rec-empty", "rec-ws", "rec-notext", "rec-num",
                                       "rec-bytes", "6", "7", "8", "z"]
    for r in results[1:-1]:
        assert r.status == "error" and r.error is not None, r
        assert r.error.code == "input_invalid"
        assert repr(r.id) in r.error.message, r.error.message
        assert CANARY not in r.error.message
    assert [results[0].status, results[-1].status] == ["ok", "ok"]
    assert results[0].output == "Billing will reply by email."


# --- graph YAML through load_graph, `shoal validate` and `shoal run` ----------------------------


def _tabs() -> bytes:
    return b"shoal: 1\nname: g\nnodes:\n\ta: {agent: noop}\n"


def _alias_bomb() -> bytes:
    lines = ["shoal: 1", "name: g", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return ("\n".join(lines) + "\nnodes: {a: {agent: noop}}\n").encode()


def _merge_keys() -> bytes:
    return (b"shoal: 1\nname: g\nnodes:\n  a: &base {agent: noop}\n  b: {<<: *base}\n"
            b"edges: [a -> b]\n")


def _ten_megabytes() -> bytes:
    return b"shoal: 1\nname: g\nnodes: {a: {agent: noop}}\n# " + b"x" * (10 * 1024 * 1024) + b"\n"


def _duplicate_keys() -> bytes:
    return b"shoal: 1\nname: g\nname: h\nnodes:\n  a: {agent: noop}\n"


def _not_utf8() -> bytes:
    return b"shoal: 1\nname: g\ndescription: caf\xe9\nnodes:\n  a: {agent: noop}\n"


def _utf16() -> bytes:
    return "shoal: 1\nname: g\nnodes:\n  a: {agent: noop}\n".encode("utf-16")


def _empty() -> bytes:
    return b""


def _comments_only() -> bytes:
    return b"# nothing here yet\n\n"


def _top_level_list() -> bytes:
    return b"- shoal: 1\n- name: g\n- nodes: {a: {agent: noop}}\n"


def _unknown_tag() -> bytes:
    return b"shoal: 1\nname: !custom g\nnodes:\n  a: {agent: noop}\n"


def _python_tag() -> bytes:
    return b"shoal: 1\nname: !!python/name:os.system g\nnodes:\n  a: {agent: noop}\n"


def _deep_nesting() -> bytes:
    return b"shoal: 1\nname: g\nnodes:\n  a: {agent: noop}\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n"


def _nul_character() -> bytes:
    return b"shoal: 1\nname: g\x00\nnodes:\n  a: {agent: noop}\n"


YAML_CASES = [
    pytest.param(_tabs, 4, "invalid YAML", id="tabs"),
    pytest.param(_alias_bomb, 1, "expands to over", id="alias-bomb"),
    pytest.param(_merge_keys, 5, "merge keys ('<<') are not supported", id="merge-keys"),
    pytest.param(_ten_megabytes, None, "a graph spec may have at most", id="ten-megabytes"),
    pytest.param(_duplicate_keys, 3, "duplicate key 'name' (first at line 2)",
                 id="duplicate-keys"),
    pytest.param(_not_utf8, 3, "not valid UTF-8", id="not-utf8"),
    pytest.param(_utf16, 1, "not valid UTF-8", id="utf16"),
    pytest.param(_empty, 1, "the file is empty", id="empty-file"),
    pytest.param(_comments_only, 1, "the file is empty", id="comments-only"),
    pytest.param(_top_level_list, 1, "a graph spec must be a mapping", id="top-level-list"),
    pytest.param(_unknown_tag, 2, "tag", id="unknown-tag"),
    pytest.param(_python_tag, 2, "tag", id="python-tag"),
    pytest.param(_deep_nesting, 5, "nested too deeply", id="deep-nesting"),
    pytest.param(_nul_character, 2, "not allowed in YAML", id="nul-character"),
]


@pytest.mark.parametrize(("make", "line", "problem"), YAML_CASES)
def test_a_bad_graph_yaml_is_named_by_file_and_line(
    tmp_path: Path, make: Callable[[], bytes], line: int | None, problem: str
):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(make())
    good = _keyword_graph(tmp_path, "good.yaml")
    where = f"{bad}:{line}:" if line is not None else f"{bad}: "

    with pytest.raises(shoal.SpecError) as info:
        shoal.load_graph(bad)
    issues = [str(issue) for issue in info.value.issues]
    assert any(i.startswith(where) and problem in i for i in issues), issues
    assert all("\n" not in i for i in issues), issues

    checked = runner.invoke(app, ["validate", str(bad), str(good)])
    _clean_exit(checked)
    assert checked.exit_code == 2
    assert any(out.startswith(where) and problem in out for out in checked.stderr.splitlines())
    assert f"ok: {good}:" in checked.stdout  # the next file is still checked

    ran = runner.invoke(app, ["run", str(bad), "--text", "my bill"])
    _clean_exit(ran)
    assert ran.exit_code == 2 and ran.stdout == ""
    assert any(out.startswith(where) for out in ran.stderr.splitlines()), ran.stderr


def test_plain_anchors_and_aliases_still_load(tmp_path: Path):
    path = _write(tmp_path / "g.yaml", """\
shoal: 1
name: anchors
nodes:
  first: &reply {agent: template_reply, default: "We will reply soon."}
  second: *reply
edges: [first -> second]
""")
    graph = shoal.load_graph(path)
    assert [n.node for n in graph.run("hello").nodes] == ["first", "second"]


# --- model files: clear errors at load, naming the file ------------------------------------------


def _model_graph(tmp_path: Path, model: str, node: str) -> Path:
    return _write(tmp_path / "models.yaml",
                  f"shoal: 1\nname: models\nmodels:\n  m: {model}\nnodes:\n  a: {node}\n")


def _check_model_error(tmp_path: Path, graph: Path, names: Path, problem: str) -> None:
    """load_graph raises a BackendError naming ``names``; the CLI says the same and goes on."""
    with pytest.raises(shoal.BackendError) as info:
        shoal.load_graph(graph)
    message = str(info.value)
    assert str(names) in message and problem in message, message
    assert info.value.code == "backend_failed"

    good = _keyword_graph(tmp_path, "good.yaml")
    checked = runner.invoke(app, ["validate", str(graph), str(good)])
    _clean_exit(checked)
    assert checked.exit_code == 2
    [said] = [out for out in checked.stderr.splitlines() if out.startswith(f"{graph}: ")]
    assert str(names) in said and problem in said
    assert f"ok: {good}:" in checked.stdout

    src = _write(tmp_path / "in.jsonl", '{"id": "a", "text": "my bill"}\n')
    out = tmp_path / "never.jsonl"
    ran = runner.invoke(app, ["run", str(graph), "-i", str(src), "-o", str(out), "--no-progress"])
    _clean_exit(ran)
    assert ran.exit_code == 2 and str(names) in ran.stderr
    assert not out.exists()  # refused at load, before any record ran


def _gguf_missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.gguf"


def _gguf_random(tmp_path: Path) -> Path:
    path = tmp_path / "random.gguf"
    path.write_bytes(random.Random(7).randbytes(64 * 1024))
    return path


def _gguf_empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    return path


def _truncated_real(size: Callable[[int], int], name: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        from shoal.models.catalog import resolve

        real = resolve("smollm2-135m-instruct")
        path = tmp_path / name
        with real.open("rb") as fh:
            path.write_bytes(fh.read(size(real.stat().st_size)))
        return path

    return make


@slow
@pytest.mark.parametrize(("make", "problem"), [
    pytest.param(_gguf_missing, "model file not found", id="missing-path"),
    pytest.param(_gguf_random, "not a GGUF model", id="random-bytes"),
    pytest.param(_gguf_empty, "not a GGUF model", id="empty-file"),
    pytest.param(_truncated_real(lambda n: n // 3, "third.gguf"), "not a GGUF model",
                 id="truncated-real-third"),
    pytest.param(_truncated_real(lambda n: 64, "header.gguf"), "not a GGUF model",
                 id="truncated-real-header"),
])
def test_a_bad_gguf_is_a_clear_error_at_load(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
):
    tmp_path = tmp_path.resolve()
    model = make(tmp_path)
    graph = _model_graph(tmp_path, f"{{kind: llamacpp, path: {model.name}}}",
                         "{agent: classifier, model: m, labels: [positive, negative]}")
    _check_model_error(tmp_path, graph, model, problem)


def _sidecar(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _edit_sidecar(model: Path, **changes: Any) -> None:
    data = json.loads(_sidecar(model).read_text(encoding="utf-8"))
    data.update(changes)
    _sidecar(model).write_text(json.dumps(data), encoding="utf-8")


def _vouch(model: Path, data: bytes) -> None:
    """Replace the model's bytes and make the sidecar's sha256 agree, so ONNX Runtime sees them."""
    import hashlib

    model.write_bytes(data)
    _edit_sidecar(model, model_sha256=hashlib.sha256(data).hexdigest())


ONNX_CASES = [
    pytest.param(lambda m: m.unlink(), "model file not found", id="missing-model"),
    pytest.param(lambda m: m.write_bytes(random.Random(3).randbytes(5000)), "sha256",
                 id="random-bytes"),
    pytest.param(lambda m: _vouch(m, random.Random(3).randbytes(5000)),
                 "not a loadable ONNX model", id="random-bytes-vouched-by-sidecar"),
    pytest.param(lambda m: _vouch(m, m.read_bytes()[: m.stat().st_size // 3]),
                 "not a loadable ONNX model", id="truncated-vouched-by-sidecar"),
    pytest.param(lambda m: _sidecar(m).unlink(), "not found", id="missing-sidecar"),
    pytest.param(lambda m: _sidecar(m).write_text("{not json", encoding="utf-8"),
                 "sidecar is not valid JSON", id="sidecar-not-json"),
    pytest.param(lambda m: _edit_sidecar(m, labels=[f"label{i}" for i in range(7)]),
                 "labels do not match", id="sidecar-labels-differ"),
    pytest.param(lambda m: _edit_sidecar(m, labels=["appointment", "billing"]),
                 "labels do not match", id="sidecar-fewer-labels"),
    pytest.param(lambda m: _edit_sidecar(m, format_version=99), "format_version 99",
                 id="sidecar-format-version"),
]


@pytest.mark.parametrize(("spoil", "problem"), ONNX_CASES)
def test_a_bad_onnx_classifier_is_a_clear_error_at_load(
    tmp_path: Path, spoil: Callable[[Path], object], problem: str
):
    tmp_path = tmp_path.resolve()
    model = tmp_path / "triage.onnx"
    shutil.copyfile(TRIAGE_MODEL, model)
    shutil.copyfile(_sidecar(TRIAGE_MODEL), _sidecar(model))
    spoil(model)
    graph = _model_graph(tmp_path, "{kind: onnx-classifier, path: triage.onnx}",
                         "{agent: classifier, model: m}")
    _check_model_error(tmp_path, graph, model, problem)


def test_node_labels_that_differ_from_the_classifier_are_an_error_at_load(tmp_path: Path):
    model = tmp_path / "triage.onnx"
    shutil.copyfile(TRIAGE_MODEL, model)
    shutil.copyfile(_sidecar(TRIAGE_MODEL), _sidecar(model))
    graph = _model_graph(tmp_path, "{kind: onnx-classifier, path: triage.onnx}",
                         "{agent: classifier, model: m, labels: [billing, emergency]}")
    with pytest.raises(shoal.ShoalError, match=r"node 'a' \(agent 'classifier'\): config labels"):
        shoal.load_graph(graph)
    checked = runner.invoke(app, ["validate", str(graph)])
    _clean_exit(checked)
    assert checked.exit_code == 2
    assert checked.stderr.startswith(f"{graph}: node 'a'")


# --- a failing planner: the local answer stays, the run is never an error ----------------------

PLANNER_ANSWER = completion(json.dumps(
    {"answer": "The billing office will call you back.", "label": "billing", "confidence": 0.9}))
PLANNER_RECORDS = [("r1", "My bill is wrong, this is John Smith, 555-201-3344."),
                   ("r2", "Another question about my invoice."),
                   ("r3", "Hello, is anyone there?")]


def _planner_graph(tmp_path: Path, base_url: str, name: str) -> Path:
    return _write(tmp_path / f"{name}.yaml", f"""\
shoal: 1
name: {name}
models:
  planner: {{kind: openai, base_url: "{base_url}", model: fake-model, timeout_s: 5,
            max_retries: 1}}
nodes:
  mask: {{agent: privacy_masker}}
  triage:
    agent: keyword_classifier
    escalate_below: 0.99
    default: other
    labels: {{billing: [bill, invoice], emergency: ["chest pain"]}}
edges:
  - mask -> triage
escalation:
  planner: planner
  timeout_s: 1.0
""")


PLANNER_FAULTS = [
    pytest.param([completion("Sure! Here is what I think: billing, probably {")],
                 "output_invalid", id="malformed-json-answer"),
    pytest.param([FakeResponse(200, "this is not json {")], "backend_failed",
                 id="malformed-json-body"),
    pytest.param([error(500, type_="server_error")] * 2, "backend_failed", id="http-500s"),
    pytest.param([FakeResponse(delay_s=3.0, body=PLANNER_ANSWER.body)], "backend_timeout",
                 id="answer-after-timeout"),
]


def _check_planner_fault(rows: list[dict[str, Any]], code: str) -> None:
    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]
    assert all(r["status"] != "error" for r in rows), [r.get("error") for r in rows]
    first = rows[0]
    # "ok"; or "pending_escalation" where the planner outage was queued for a later drain.
    assert first["status"] in ("ok", "pending_escalation"), first
    triage = first["nodes"][-1]
    assert triage["node"] == "triage" and triage["escalate"] and not triage["escalated"]
    assert triage["label"] == "billing" and first["output"] == "billing"  # the local answer
    reason = triage["reason"]
    assert re.search(r"planner (failed|unavailable)", reason) and code in reason, reason
    assert "local answer kept" in reason
    for other in rows[1:]:
        assert other["status"] == "escalated", other
        assert other["output"]["answer"] == "The billing office will call you back."


@slow
@pytest.mark.parametrize(("script", "code"), PLANNER_FAULTS)
async def test_a_failing_planner_keeps_the_local_answer_in_abatch(
    tmp_path: Path, script: list[FakeResponse], code: str
):
    with fake_openai(*script, default=PLANNER_ANSWER) as fake:
        graph = shoal.load_graph(_planner_graph(tmp_path, fake.base_url, "planner-fault"))
        results = await graph.abatch(PLANNER_RECORDS, concurrency=1)
    _check_planner_fault([r.model_dump(mode="json") for r in results], code)
    assert len(fake.requests) >= 3


@slow
def test_a_failing_planner_keeps_the_local_answer_in_shoal_run(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in PLANNER_RECORDS),
                   encoding="utf-8")
    with fake_openai(error(500, type_="server_error"), error(500, type_="server_error"),
                     default=PLANNER_ANSWER) as fake:
        graph = _planner_graph(tmp_path, fake.base_url, "planner-fault-cli")
        result, rows = _run_file(graph, src, tmp_path / "out.jsonl", "--concurrency", "1",
                                 "--fail-on-error")
    assert result.exit_code == 0, result.output
    _check_planner_fault(rows, "backend_failed")
