"""The learned deferral router: out-of-fold training, export, load checks, and the node using it.

Real models throughout: a TF-IDF classifier trained here on part of the healthcare training
split (fast), and in the slow tests the packaged healthcare triage ensemble with MiniLM.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal import GraphSpec, NodeSpec
from shoal.errors import BackendError
from shoal.graphs.spec import OnnxClassifierModelSpec
from shoal.models.onnx import load_classifier, sidecar_path
from shoal.models.refit import refitter
from shoal.models.router import (
    KNN_FEATURES,
    DeferralRouter,
    knn_features,
    load_router,
    plain_features,
    words_of,
)
from shoal.models.train import train_text_classifier
from shoal.models.train_router import FoldPlan, fold_plan, out_of_fold, train_router
from shoal.policies.escalation import NodeRule, RouterRule, decide

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "examples/healthcare/data/train.jsonl"
N_ROWS = 300


def rows(n: int = N_ROWS) -> list[dict[str, str]]:
    data = [json.loads(line) for line in TRAIN.read_text(encoding="utf-8").splitlines()]
    return data[:n]


@pytest.fixture(scope="module")
def tfidf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("router-model")
    data = folder / "train.jsonl"
    data.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]})
                            + "\n" for r in rows()), encoding="utf-8")
    train_text_classifier(data, folder / "triage.onnx", seed=0)
    return folder / "triage.onnx"


@pytest.fixture(scope="module")
def trained(tfidf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("router") / "router.onnx"
    data = rows()
    train_router([r["text"] for r in data], [r["label"] for r in data],
                 [r["family"] for r in data], tfidf_model, out, data_sha256="0" * 64, seed=3)
    return out


def test_fold_plan_keeps_groups_together_and_checks_leaks() -> None:
    groups = [f"g{i % 13}" for i in range(100)]
    plan = fold_plan(groups, 5, seed=1)
    for held, train in zip(plan.held_out, plan.train, strict=True):
        held_groups = {groups[i] for i in held}
        assert held_groups.isdisjoint({groups[i] for i in train})
    assert sorted(np.concatenate(plan.held_out).tolist()) == list(range(100))
    assert fold_plan(groups, 5, seed=1).held_out[0].tolist() == plan.held_out[0].tolist()
    leaky = FoldPlan(held_out=(np.array([0, 1]), np.array([2, 3])),
                     train=(np.array([1, 2, 3]), np.array([0, 1])))
    with pytest.raises(BackendError, match="trains on a row"):
        leaky.check(4)
    with pytest.raises(BackendError, match="groups cannot make"):
        fold_plan(["a", "b"], 5, seed=0)


def test_no_feature_comes_from_a_model_that_saw_the_row(tfidf_model: Path) -> None:
    data = rows()
    texts, labels = [r["text"] for r in data], [r["label"] for r in data]
    oof = out_of_fold(texts, labels, [r["family"] for r in data], tfidf_model, seed=3,
                      embeddings=None)
    oof.plan.check(len(texts))
    refit = refitter(tfidf_model)
    # Row 0's fold: retrain on that fold's training rows (which must not include row 0) and
    # recompute its features: they are the out-of-fold ones. A model that saw the row gives
    # other features.
    fold = int(oof.fold[0])
    train = oof.plan.train[fold]
    assert 0 not in train.tolist()
    model = refit.fit([texts[i] for i in train], [labels[i] for i in train], None, seed=3)
    again = plain_features(model.signals([texts[0]], None), [texts[0]], list(refit.labels),
                           words_of([texts[i] for i in train]))
    np.testing.assert_allclose(again[0], oof.features[0], rtol=1e-5, atol=1e-6)
    everything = refit.fit(texts, labels, None, seed=3)
    seen = plain_features(everything.signals([texts[0]], None), [texts[0]],
                          list(refit.labels), words_of(texts))
    assert not np.allclose(seen[0], oof.features[0])
    # Out of fold, the model is wrong more often than in sample.
    assert oof.wrong.mean() > 0.02


def test_training_is_deterministic_under_a_seed(tfidf_model: Path, trained: Path,
                                                tmp_path: Path) -> None:
    data = rows()
    again = tmp_path / "again.onnx"
    train_router([r["text"] for r in data], [r["label"] for r in data],
                 [r["family"] for r in data], tfidf_model, again, data_sha256="0" * 64, seed=3)
    assert again.read_bytes() == trained.read_bytes()
    # Another seed deals the families into other folds (so it would train another router).
    groups = [r["family"] for r in data]
    assert [f.tolist() for f in fold_plan(groups, 5, seed=4).held_out] != [
        f.tolist() for f in fold_plan(groups, 5, seed=3).held_out]


def test_sidecar_records_folds_and_hashes(trained: Path, tfidf_model: Path) -> None:
    router = load_router(trained)
    side = router.sidecar
    assert side.n_examples == N_ROWS and len(side.folds) == 5
    assert sum(f.n_held_out for f in side.folds) == N_ROWS
    assert side.node_model_sha256 == hashlib.sha256(tfidf_model.read_bytes()).hexdigest()
    assert side.knn == 0 and not any(name in side.features for name in KNN_FEATURES)
    assert side.oof["auroc"] is not None and side.oof["auroc"] > 0.6
    assert abs((side.oof["mean_p_wrong"] or 0) - (side.oof["error_rate"] or 0)) < 0.05


def test_router_scores_rank_errors(trained: Path, tfidf_model: Path) -> None:
    router = load_router(trained)
    classifier = load_classifier(tfidf_model)
    texts = ["can I move my appointment to friday", "asdf qwerty zxcv",
             "my chest hurts and my left arm is numb, also need a refill and a bill copy"]
    signals = classifier.signals_sync(texts)  # type: ignore[attr-defined]
    p = router.p_wrong_sync(signals, texts)
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert p[0] < p[1]  # a clear request is less likely wrong than noise


def test_changed_router_or_sidecar_is_refused(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "r.onnx"
    copy.write_bytes(trained.read_bytes())
    side = json.loads(sidecar_path(trained).read_text())
    sidecar_path(copy).write_text(json.dumps(side))
    DeferralRouter(copy)  # the pair as written loads
    copy.write_bytes(trained.read_bytes() + b"\0")
    with pytest.raises(BackendError, match="sha256"):
        DeferralRouter(copy)
    copy.write_bytes(trained.read_bytes())
    sidecar_path(copy).write_text(json.dumps({**side, "features": side["features"][::-1]}))
    with pytest.raises(BackendError, match="features or labels differ"):
        DeferralRouter(copy)
    sidecar_path(copy).write_text(json.dumps({**side, "kind": "tfidf-logreg"}))
    with pytest.raises(BackendError, match="not a 'deferral-router'"):
        DeferralRouter(copy)
    sidecar_path(copy).unlink()
    with pytest.raises(BackendError, match="sidecar"):
        DeferralRouter(copy)


def test_router_refuses_another_model(trained: Path, tfidf_model: Path) -> None:
    router = load_router(trained)
    assert router.check_for(list(router.labels), router.sidecar.node_model_sha256) is None
    assert "another model file" in (router.check_for(list(router.labels), "1" * 64) or "")
    assert "labels" in (router.check_for(["a", "b"], None) or "")


def test_decide_escalates_on_router_threshold() -> None:
    rule = NodeRule(router=RouterRule(model="r.onnx", above=0.4), on_flag=False)
    wants = decide(rule, confidence=0.99, flagged=False, note=None, p_wrong=0.41)
    assert wants.wants and "P(wrong) 0.410 >= 0.4" in (wants.trigger or "")
    assert not decide(rule, confidence=0.1, flagged=False, note=None, p_wrong=0.39).wants
    scored_only = NodeRule(router=RouterRule(model="r.onnx"), on_flag=False)
    assert not decide(scored_only, confidence=0.5, flagged=False, note=None, p_wrong=0.99).wants


def test_knn_features_match_the_onnx_graph(trained: Path) -> None:
    bank = np.eye(4, 8, dtype=np.float32)
    emb = np.array([[1, 0.1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feats = knn_features(emb, np.array([0, 1]), bank, np.array([0, 1, 1, 0]), k=2)
    assert feats.shape == (2, len(KNN_FEATURES))
    assert feats[0, 4] == 1.0 and feats[1, 4] == 0.0  # top neighbour's label agrees / not
    assert feats[0, 3] == pytest.approx(float(emb[0, 0]), abs=1e-6)


def test_graph_node_records_p_wrong_and_escalation_reason(trained: Path, tfidf_model: Path,
                                                         tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"escalation: 1\nname: r\nnodes:\n  triage:\n    router: "
                      f"{{model: {trained}, above: 0.0}}\n", encoding="utf-8")
    spec = GraphSpec(
        name="routed",
        models={"triage": OnnxClassifierModelSpec(kind="onnx-classifier",
                                                  path=str(tfidf_model))},
        nodes={"triage": NodeSpec(agent="classifier", model="triage")},
        edges=[], escalation=None)
    graph = shoal.Graph(spec, rules={"triage": NodeRule(router=RouterRule(
        model=str(trained), above=0.0), on_flag=False)})
    result = graph.run("I need to reschedule my appointment")
    [trace] = result.nodes
    assert trace.p_wrong is not None and 0.0 <= trace.p_wrong <= 1.0
    assert trace.escalate and "router P(wrong)" in (trace.reason or "")
    assert "p_wrong" in trace.model_dump()


def test_graph_refuses_a_router_for_another_model(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n"
                             for r in rows(300)[::-1]), encoding="utf-8")
    train_text_classifier(other, tmp_path / "other.onnx", seed=5)
    spec = GraphSpec(
        name="mismatch",
        models={"triage": OnnxClassifierModelSpec(kind="onnx-classifier",
                                                  path=str(tmp_path / "other.onnx"))},
        nodes={"triage": NodeSpec(agent="classifier", model="triage")}, edges=[])
    with pytest.raises(BackendError, match="another model file"):
        shoal.Graph(spec, rules={"triage": NodeRule(router=RouterRule(model=str(trained)))})


def test_calibrate_compares_routers_and_writes_the_learned_one(trained: Path, tfidf_model: Path,
                                                              tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shoal.cli import app
    from shoal.policies.escalation import load_policy

    graph = tmp_path / "graph.yaml"
    graph.write_text(f"shoal: 1\nname: routed\nmodels:\n  triage: {{kind: onnx-classifier, "
                     f"path: {tfidf_model}}}\nnodes:\n  triage: {{agent: classifier, "
                     f"model: triage}}\nedges: []\n", encoding="utf-8")
    dev = tmp_path / "dev.jsonl"
    lines = (ROOT / "examples/healthcare/data/dev.jsonl").read_text().splitlines()[:80]
    dev.write_text("\n".join(lines) + "\n", encoding="utf-8")
    policy, out = tmp_path / "policies" / "p.yaml", tmp_path / "cal.json"
    policy.parent.mkdir()
    result = CliRunner().invoke(app, [
        "calibrate", str(graph), "--data", str(dev), "--planner", "oracle", "--router",
        "learned", "--router-model", str(trained), "-o", str(policy), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["router"] == "learned" and set(data["routers"]) == {"confidence", "learned"}
    assert data["routers"]["learned"]["auroc"] is not None
    assert "learned" in result.output and "confidence" in result.output
    written = load_policy(policy)
    rule = written.nodes["triage"]
    assert rule.below is None and rule.router is not None and rule.router.above is not None
    assert not Path(rule.router.model).is_absolute()
    assert (policy.parent / rule.router.model).resolve() == trained.resolve()
