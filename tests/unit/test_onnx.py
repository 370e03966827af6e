"""ONNX backends and classifier training, on real ONNX Runtime, scikit-learn, skl2onnx and MiniLM.

Tests that load the MiniLM weights are marked ``slow``; the TF-IDF ones train a 13 KB model in
about a second and run in the quick subset too.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from shoal.errors import BackendError, BackendTimeout, ErrorCode
from shoal.graphs.spec import OnnxEmbedderModelSpec
from shoal.models import pool
from shoal.models.base import Classifier, Embedder
from shoal.models.batching import BatchSettings
from shoal.models.onnx import (
    EmbeddingClassifier,
    OnnxEmbedder,
    OnnxTextClassifier,
    load_classifier,
    sidecar_path,
)
from shoal.models.specs import OrtSettings
from shoal.models.train import (
    TrainingDataError,
    TrainReport,
    build_embedding_classifier,
    read_examples,
    split_examples,
    tfidf_pipeline,
    train_text_classifier,
)

slow = pytest.mark.slow

# Written for this test: three labels, fifteen differently worded requests each.
DATA: dict[str, list[str]] = {
    "delivery": [
        "Where is my package? It was supposed to arrive on Monday.",
        "The tracking number you sent does not work.",
        "My order has been stuck in transit for a week.",
        "Can you ship to a PO box in Alaska?",
        "The courier left the parcel at the wrong house.",
        "How long does standard shipping take to Canada?",
        "I need the box delivered before Friday, is express possible?",
        "The delivery driver never showed up today.",
        "Is there a way to change the shipping address after ordering?",
        "My parcel says delivered but nothing is at my door.",
        "Do you offer free shipping on orders over fifty dollars?",
        "The package arrived crushed and soaked from the rain.",
        "Can I pick the order up from a local store instead?",
        "Why is the estimated arrival date two weeks away?",
        "Only half of my items came in the shipment.",
    ],
    "refund": [
        "I returned the jacket three weeks ago and still have no refund.",
        "How do I get my money back for a damaged blender?",
        "Please cancel my subscription and reimburse this month.",
        "You charged me for an item I sent back.",
        "Can I return shoes that I have already worn once?",
        "The refund went to an old card that is closed now.",
        "What is your return policy for electronics?",
        "I want a full refund, the product is nothing like the photos.",
        "Do I have to pay for the return label myself?",
        "My store credit has not shown up in my account.",
        "How many days does it take for a refund to be processed?",
        "I was billed twice and need one charge reversed.",
        "Can I exchange this sweater for a larger size instead of a refund?",
        "The return window closed yesterday, can you make an exception?",
        "Reimburse me for the shipping fee, the item was defective.",
    ],
    "login": [
        "I forgot my password and the reset email never arrives.",
        "My account is locked after too many sign-in attempts.",
        "The two-factor code on my phone is always rejected.",
        "How do I change the email address I use to log in?",
        "I cannot sign in with my Google account anymore.",
        "The website says my username does not exist.",
        "Someone else may have accessed my account, please help.",
        "The login page just keeps spinning and never loads.",
        "I set up a new phone and lost my authenticator app.",
        "Why am I logged out every time I close the browser?",
        "My password reset link says it has expired.",
        "Can I merge two accounts that I created by mistake?",
        "The app asks me to verify my identity every single time.",
        "I never receive the verification text message.",
        "How do I turn off two-step verification?",
    ],
}

TEXTS = [t for texts in DATA.values() for t in texts]


def _write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_model(src: Path, dest_dir: Path, *, sidecar: bool = True) -> Path:
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    if sidecar:
        shutil.copyfile(sidecar_path(src), sidecar_path(dest))
    return dest


def _edit_sidecar(model: Path, **changes: object) -> None:
    path = sidecar_path(model)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"text": t, "label": label, "id": i}
            for i, (label, texts) in enumerate(DATA.items()) for t in texts]
    return _write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", rows)


@pytest.fixture(scope="module")
def tfidf(tmp_path_factory: pytest.TempPathFactory, data_file: Path) -> TrainReport:
    return train_text_classifier(data_file, tmp_path_factory.mktemp("tfidf") / "intent.onnx")


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


@pytest.fixture(scope="module")
def centroid(
    tmp_path_factory: pytest.TempPathFactory, data_file: Path, embedder: OnnxEmbedder
) -> TrainReport:
    out = tmp_path_factory.mktemp("centroid") / "intent.onnx"
    return build_embedding_classifier(data_file, out, embedder)


def _held_out(data_file: Path) -> tuple[list[str], list[str]]:
    _, test = split_examples(read_examples(data_file), test_size=0.2, seed=0)
    return [e.text for e in test], [e.label for e in test]


# --- training and the sidecar ---------------------------------------------------------------------


def test_training_writes_model_and_sidecar(tfidf: TrainReport, data_file: Path):
    assert tfidf.kind == "tfidf-logreg"
    assert tfidf.labels == ["delivery", "login", "refund"]
    assert tfidf.n_examples == 45
    m = tfidf.metrics
    assert (m.n_train, m.n_test) == (36, 9)
    assert set(m.per_label) == set(tfidf.labels)
    assert sum(lm.support for lm in m.per_label.values()) == 9
    assert 0.0 <= m.macro_f1 <= 1.0 and 0.0 <= m.accuracy <= 1.0
    assert tfidf.onnx_agreement == 1.0
    assert tfidf.max_probability_diff < 1e-4
    assert tfidf.model_path.stat().st_size < 100_000

    sidecar = json.loads(tfidf.sidecar_path.read_text())
    assert tfidf.sidecar_path == tfidf.model_path.with_name("intent.onnx.json")
    assert sidecar["format_version"] == 1
    assert sidecar["kind"] == "tfidf-logreg"
    assert sidecar["labels"] == tfidf.labels
    assert sidecar["model_sha256"] == _sha256(tfidf.model_path) == tfidf.model_sha256
    assert sidecar["data_sha256"] == _sha256(data_file)
    assert sidecar["n_examples"] == 45
    assert sidecar["metrics"] == m.model_dump()
    assert sidecar["created"].endswith("+00:00")
    assert {"scikit-learn", "skl2onnx", "onnxruntime"} <= set(sidecar["versions"])
    assert "accuracy" in tfidf.summary()


async def test_classify_gives_probabilities_over_the_labels(tfidf: TrainReport):
    clf = load_classifier(tfidf.model_path)
    assert isinstance(clf, OnnxTextClassifier) and isinstance(clf, Classifier)
    assert clf.labels == ("delivery", "login", "refund")
    out = await clf.classify(["my parcel never arrived", "", "RESET MY PASSWORD!!", "ü ß 漢字"])
    assert len(out) == 4
    for row in out:
        assert set(row) == set(clf.labels)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= p <= 1.0 for p in row.values())
    assert max(out[0], key=out[0].__getitem__) == "delivery"
    assert await clf.classify([]) == []


def test_onnx_agrees_with_sklearn_on_held_out_texts(tfidf: TrainReport, data_file: Path):
    examples = read_examples(data_file)
    train, test = split_examples(examples, test_size=0.2, seed=0)
    pipeline = tfidf_pipeline().fit([e.text for e in train], [e.label for e in train])
    # Held-out texts plus the inputs the NOTES pitfalls are about: case, punctuation, accents,
    # non-Latin script, empty.
    texts = [e.text for e in test] + ["Café RÉSUMÉ naïve!", "漢字 only", "", "a b c", "LOG-IN??"]
    clf = OnnxTextClassifier(tfidf.model_path)
    assert list(clf.labels) == list(pipeline.classes_)
    onnx_probs = clf.predict(texts)
    sk_probs = pipeline.predict_proba(texts)
    agreement = np.mean(onnx_probs.argmax(axis=1) == sk_probs.argmax(axis=1))
    assert agreement >= 0.99
    assert np.abs(onnx_probs - sk_probs).max() < 1e-5


def test_one_loaded_session_per_file(tfidf: TrainReport):
    before = len(pool.loaded())
    a = load_classifier(tfidf.model_path)
    b = load_classifier(tfidf.model_path)
    assert a is not b
    assert len(pool.loaded()) - before <= 1  # at most the first load in this process adds one


def test_modified_model_file_is_rejected(tfidf: TrainReport, tmp_path: Path):
    model = _copy_model(tfidf.model_path, tmp_path)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BackendError, match="sha256") as info:
        load_classifier(model)
    assert str(model) in str(info.value)
    assert info.value.code == ErrorCode.BACKEND_FAILED


def test_missing_sidecar_is_rejected(tfidf: TrainReport, tmp_path: Path):
    model = _copy_model(tfidf.model_path, tmp_path, sidecar=False)
    with pytest.raises(BackendError, match="sidecar") as info:
        load_classifier(model)
    assert str(sidecar_path(model)) in str(info.value)


def test_missing_model_file_is_rejected(tmp_path: Path):
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(BackendError, match="not found") as info:
        load_classifier(missing)
    assert str(missing) in str(info.value)


def test_corrupt_model_never_leaks_an_onnxruntime_exception(tfidf: TrainReport, tmp_path: Path):
    # A sidecar that vouches for garbage: the sha256 check passes, ONNX Runtime refuses the file.
    model = _copy_model(tfidf.model_path, tmp_path)
    model.write_bytes(b"this is not a protobuf" * 10)
    _edit_sidecar(model, model_sha256=_sha256(model))
    with pytest.raises(BackendError, match="not a loadable ONNX model") as info:
        load_classifier(model)
    assert str(model) in str(info.value)
    assert type(info.value.__cause__).__module__.startswith("onnxruntime")


def test_sidecar_labels_must_match_the_model(tfidf: TrainReport, tmp_path: Path):
    model = _copy_model(tfidf.model_path, tmp_path)
    _edit_sidecar(model, labels=list(reversed(tfidf.labels)))
    with pytest.raises(BackendError, match="labels") as info:
        load_classifier(model)
    assert str(model) in str(info.value)


@pytest.mark.parametrize(("changes", "match"), [
    ({"format_version": 99}, "format_version 99 is not supported"),
    ({"kind": "random-forest"}, "kind"),
    ({"labels": ["only-one"]}, "labels"),
])
def test_invalid_sidecar_is_rejected(
    tfidf: TrainReport, tmp_path: Path, changes: dict[str, object], match: str
):
    model = _copy_model(tfidf.model_path, tmp_path)
    _edit_sidecar(model, **changes)
    with pytest.raises(BackendError, match=match) as info:
        load_classifier(model)
    assert str(sidecar_path(model)) in str(info.value)


def test_every_bad_line_is_reported_with_file_and_line(tmp_path: Path):
    data = tmp_path / "bad.jsonl"
    good = [json.dumps({"text": t, "label": "delivery" if i % 2 else "refund"})
            for i, t in enumerate(TEXTS[:10])]
    lines = [
        good[0],
        '{"text": "unterminated',                               # 2: not JSON
        good[1],
        json.dumps({"text": "SECRET-PATIENT-NOTE"}),            # 4: no label
        json.dumps({"text": 42, "label": "refund"}),            # 5: text not a string
        json.dumps(["SECRET-PATIENT-NOTE", "refund"]),          # 6: not an object
        "",                                                     # blank: skipped
        json.dumps({"text": "SECRET-PATIENT-NOTE", "label": " refund"}),  # 8: padded label
        *good[2:],
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "model.onnx"
    with pytest.raises(TrainingDataError) as info:
        train_text_classifier(data, out)
    err = info.value
    assert [(i.line, i.file) for i in err.issues] == [(n, str(data)) for n in (2, 4, 5, 6, 8)]
    message = str(err)
    for n in (2, 4, 5, 6, 8):
        assert f"{data}:{n}: " in message
    assert "missing 'label'" in message
    assert "SECRET" not in message
    assert err.code == ErrorCode.INPUT_INVALID
    assert not out.exists() and not sidecar_path(out).exists()


def test_labels_too_small_to_split_are_reported(tmp_path: Path):
    rows = [{"text": t, "label": "delivery"} for t in DATA["delivery"]]
    rows.append({"text": DATA["refund"][0], "label": "refund"})
    data = _write_jsonl(tmp_path / "few.jsonl", rows)
    with pytest.raises(TrainingDataError, match="label 'refund' has 1 example"):
        train_text_classifier(data, tmp_path / "model.onnx")


async def test_tiny_timeout_raises_backend_timeout(tfidf: TrainReport):
    clf = load_classifier(tfidf.model_path)
    with pytest.raises(BackendTimeout) as info:
        await clf.classify(TEXTS * 500, timeout_s=1e-4)
    assert isinstance(info.value, TimeoutError)
    assert info.value.backend == "intent.onnx"


async def test_twenty_concurrent_classify_calls(tfidf: TrainReport):
    clf = load_classifier(tfidf.model_path)
    texts = TEXTS[:20]
    results = await asyncio.gather(*(clf.classify([t], timeout_s=10) for t in texts))
    expected = await clf.classify(texts)
    for (got,), want in zip(results, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


def test_import_shoal_loads_no_model_library():
    code = ("import sys, shoal, shoal.models.onnx, shoal.models.train; "
            "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'sklearn', 'skl2onnx', 'onnx')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


# --- embedder -------------------------------------------------------------------------------------


def _cos(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.dot(a, b))  # both unit-length


@slow
async def test_embedder_gives_unit_vectors_of_its_dim(embedder: OnnxEmbedder):
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384
    vectors = await embedder.embed([*TEXTS[:5], ""])
    assert len(vectors) == 6
    for v in vectors:
        assert len(v) == 384
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert await embedder.embed([]) == []


@slow
async def test_similar_sentences_are_closer_than_unrelated(embedder: OnnxEmbedder):
    a, b, c = await embedder.embed([
        "I forgot my password and cannot log in.",
        "I can't sign in because I lost my password.",
        "The parcel was left at the wrong house.",
    ])
    assert _cos(a, b) > _cos(a, c) + 0.2
    assert _cos(a, b) > 0.6


@slow
async def test_batching_does_not_change_the_vectors(embedder: OnnxEmbedder):
    batch = await embedder.embed(TEXTS[:10])
    for text, vector in zip(TEXTS[:10], batch, strict=True):
        (single,) = await embedder.embed([text])
        assert _cos(single, vector) > 0.999


@slow
async def test_long_text_is_embedded_from_its_first_256_tokens(embedder: OnnxEmbedder):
    words = ("the cat sat on the mat and " * 80).split()  # one token each: 560 tokens
    first = " ".join(words[:254])  # + [CLS] and [SEP] = 256
    long_vec, first_vec = await embedder.embed([" ".join(words), first])
    assert _cos(long_vec, first_vec) > 0.9999


@slow
async def test_embedder_from_spec_shares_the_loaded_model(embedder: OnnxEmbedder):
    spec = OnnxEmbedderModelSpec(kind="onnx-embedder", model="minilm-l6-int8")
    before = len(pool.loaded())
    again = OnnxEmbedder.from_spec(spec, None)
    assert len(pool.loaded()) == before
    assert again.dim == 384 and again.model_sha256 == embedder.model_sha256
    by_path = OnnxEmbedder.from_spec(
        OnnxEmbedderModelSpec(kind="onnx-embedder", path=str(embedder.model_path)), None)
    assert len(pool.loaded()) == before
    (v1,), (v2,) = await again.embed(["hello"]), await by_path.embed(["hello"])
    assert _cos(v1, v2) > 0.99999


@slow
async def test_embed_tiny_timeout_raises_backend_timeout(embedder: OnnxEmbedder):
    with pytest.raises(BackendTimeout):
        await embedder.embed(TEXTS, timeout_s=1e-3)


@slow
async def test_twenty_concurrent_embed_calls(embedder: OnnxEmbedder):
    texts = TEXTS[:20]
    results = await asyncio.gather(*(embedder.embed([t], timeout_s=30) for t in texts))
    expected = await embedder.embed(texts)
    for (got,), want in zip(results, expected, strict=True):
        assert _cos(got, want) > 0.999


# --- embedding classifier -------------------------------------------------------------------------


@slow
async def test_embedding_classifier_gets_held_out_examples_mostly_right(
    centroid: TrainReport, data_file: Path
):
    assert centroid.kind == "embedding-centroid"
    assert centroid.onnx_agreement == 1.0
    sidecar = json.loads(centroid.sidecar_path.read_text())
    assert sidecar["kind"] == "embedding-centroid"
    assert sidecar["embedder"] == "minilm-l6-int8"
    assert sidecar["embedder_dim"] == 384 and sidecar["temperature"] == 0.05

    clf = load_classifier(centroid.model_path)
    assert isinstance(clf, EmbeddingClassifier)
    texts, truth = _held_out(data_file)
    out = await clf.classify(texts)
    for row in out:
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-9)
    predicted = [max(row, key=row.__getitem__) for row in out]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert correct >= 7, f"{correct}/{len(truth)} held-out examples right"
    assert centroid.metrics.accuracy == pytest.approx(correct / len(truth))


@slow
async def test_embedding_classifier_concurrency_and_timeout(centroid: TrainReport):
    clf = load_classifier(centroid.model_path)
    results = await asyncio.gather(*(clf.classify([t], timeout_s=30) for t in TEXTS[:20]))
    assert all(len(r) == 1 and set(r[0]) == set(clf.labels) for r in results)
    with pytest.raises(BackendTimeout):
        await clf.classify(TEXTS, timeout_s=1e-3)


class _TinyEmbedder:
    name = "tiny"
    dim = 8

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]:
        return [[1.0] + [0.0] * 7 for _ in texts]


@slow
def test_embedding_classifier_rejects_an_embedder_of_another_width(centroid: TrainReport):
    with pytest.raises(BackendError, match="384-d") as info:
        load_classifier(centroid.model_path, embedder=_TinyEmbedder())
    assert str(centroid.model_path) in str(info.value)


# --- per-model ONNX Runtime settings and micro-batching ------------------------------------------


def test_an_unknown_execution_provider_is_an_error_naming_it(tfidf: TrainReport) -> None:
    with pytest.raises(BackendError, match=r"unknown ONNX Runtime execution provider.*NoSuchEP"):
        OnnxTextClassifier(tfidf.model_path, ort=OrtSettings(providers=("NoSuchEP",)))


def test_a_provider_this_build_lacks_falls_back_to_the_cpu_with_a_warning(
        tfidf: TrainReport, log_stream: io.StringIO) -> None:
    clf = OnnxTextClassifier(tfidf.model_path, ort=OrtSettings(
        threads=2, providers=("CUDAExecutionProvider", "CPUExecutionProvider")))
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    warned = [e for e in events if e["event"] == "gpu_unavailable"]
    assert warned and warned[0]["providers"] == ["CUDAExecutionProvider"]
    assert warned[0]["fallback"] == "cpu"
    assert clf._runtime.session.get_providers() == ["CPUExecutionProvider"]
    assert clf.predict(["refill my pills"]).shape == (1, len(clf.labels))


async def test_concurrent_calls_batch_and_give_what_each_text_gives_alone(
        tfidf: TrainReport) -> None:
    clf = OnnxTextClassifier(tfidf.model_path, batch=BatchSettings(max_wait_ms=20))
    texts = [t for texts in DATA.values() for t in texts]
    before = clf.batcher.batches
    together = await asyncio.gather(*(clf.classify([t]) for t in texts))
    assert clf.batcher.batches - before < len(texts)  # some calls shared a run
    alone = [clf.predict([t])[0] for t in texts]
    for got, one in zip(together, alone, strict=True):
        assert list(got[0].values()) == pytest.approx(list(one), abs=1e-6)
