"""Shared helpers for the issue-13 experiments (data, models, routing metrics).

Data: masked texts cached by mask_cache.py (masked_{split}.jsonl) and MiniLM vectors cached by
embed_cache.py (emb_{split}.npy).
"""
from __future__ import annotations

import json
import warnings
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.model_selection import GroupKFold

warnings.filterwarnings("ignore")
W = "out/research-routing"
TOKEN_PATTERN = r"[a-zA-Z0-9_]{2,}"
LABELS = ["appointment", "billing", "emergency", "injection", "off_topic",
          "prescription_refill", "symptom_report"]
EMER = LABELS.index("emergency")


class Split:
    def __init__(self, name):
        rows = [json.loads(l) for l in open(f"{W}/masked_{name}.jsonl")]
        self.name = name
        self.rows = rows
        self.text = [r["text"] for r in rows]
        self.raw = [r["raw"] for r in rows]
        self.y = np.array([LABELS.index(r["label"]) for r in rows])
        self.fam = np.array([r["family"] for r in rows])
        self.hard = np.array([bool(r["hard"]) for r in rows])
        self.emb = np.load(f"{W}/emb_{name}.npy").astype(np.float64)

    def __len__(self):
        return len(self.rows)


def concat(a: Split, b: Split) -> Split:
    s = Split.__new__(Split)
    s.name = a.name + "+" + b.name
    s.rows = a.rows + b.rows
    s.text, s.raw = a.text + b.text, a.raw + b.raw
    for k in ("y", "fam", "hard"):
        setattr(s, k, np.concatenate([getattr(a, k), getattr(b, k)]))
    s.emb = np.vstack([a.emb, b.emb])
    return s


def subset(a: Split, idx) -> Split:
    s = Split.__new__(Split)
    s.name = a.name
    s.rows = [a.rows[i] for i in idx]
    s.text = [a.text[i] for i in idx]
    s.raw = [a.raw[i] for i in idx]
    for k in ("y", "fam", "hard", "emb"):
        setattr(s, k, getattr(a, k)[idx])
    return s


# --- models ---------------------------------------------------------------------------------------

def word_pipe(C=10.0):
    """Today's model (shoal.models.train.tfidf_pipeline)."""
    return Pipeline([
        ("tfidf", TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2))),
        ("clf", LogisticRegression(C=C, max_iter=3000, class_weight="balanced")),
    ])


def wordchar_pipe(C=10.0, char_range=(2, 5), analyzer="char_wb"):
    return Pipeline([
        ("feats", FeatureUnion([
            ("word", TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN,
                                     ngram_range=(1, 2), sublinear_tf=True)),
            ("char", TfidfVectorizer(lowercase=True, analyzer=analyzer, ngram_range=char_range,
                                     sublinear_tf=True, min_df=2)),
        ])),
        ("clf", LogisticRegression(C=C, max_iter=3000, class_weight="balanced")),
    ])


def emb_lr(C=10.0):
    return LogisticRegression(C=C, max_iter=3000, class_weight="balanced")


class Triage:
    """word+char TF-IDF LR and MiniLM LR; ensemble = mean of probabilities."""

    def __init__(self, C_wc=10.0, C_emb=10.0, char_analyzer="char_wb"):
        self.wc = wordchar_pipe(C_wc, analyzer=char_analyzer)
        self.em = emb_lr(C_emb)
        self.w = word_pipe()

    def fit(self, s: Split):
        self.wc.fit(s.text, s.y)
        self.em.fit(s.emb, s.y)
        self.w.fit(s.text, s.y)
        self.train_emb = s.emb
        self.train_y = s.y
        self.vocab = set(self.w.named_steps["tfidf"].build_analyzer()(" ".join(s.text)))
        return self

    def predict(self, s: Split):
        p = {
            "word": self.w.predict_proba(s.text),
            "wordchar": self.wc.predict_proba(s.text),
            "emb": self.em.predict_proba(s.emb),
        }
        p["ens"] = (p["wordchar"] + p["emb"]) / 2
        p["ens3"] = (p["wordchar"] + p["emb"] + p["word"]) / 3
        return p


def grouped_folds(s: Split, k=5, seed=0):
    """GroupKFold by template family (test splits are family-disjoint, so OOF must be too)."""
    # shuffle family order for a less structured split
    rng = np.random.RandomState(seed)
    fams = np.unique(s.fam)
    perm = {f: i for i, f in enumerate(rng.permutation(fams))}
    groups = np.array([perm[f] for f in s.fam])
    return list(GroupKFold(n_splits=k).split(np.zeros(len(s)), s.y, groups))


# --- routing metrics ------------------------------------------------------------------------------

def pgr_curve(correct: np.ndarray, score: np.ndarray):
    """Escalate the top-k messages by score (k = 0..n). Returns shares, acc, pgr (oracle planner)."""
    n = len(correct)
    order = np.argsort(-score, kind="stable")
    wrong_sorted = (~correct[order]).astype(float)
    fixed = np.concatenate([[0.0], np.cumsum(wrong_sorted)])
    acc_local = correct.mean()
    acc = acc_local + fixed / n
    shares = np.arange(n + 1) / n
    gap = 1.0 - acc_local
    pgr = (acc - acc_local) / gap if gap > 0 else np.ones_like(acc)
    return shares, acc, pgr


def cpt(correct, score, p):
    shares, _, pgr = pgr_curve(correct, score)
    return float(shares[np.argmax(pgr >= p - 1e-12)])


def apgr(correct, score):
    shares, _, pgr = pgr_curve(correct, score)
    return float(np.trapezoid(pgr, shares))


def acc_at_share(correct, score, share):
    shares, acc, _ = pgr_curve(correct, score)
    k = int(np.floor(share * len(correct) + 1e-9))
    return float(acc[k])


def routing_summary(correct, score):
    return {
        "CPT50": cpt(correct, score, .5), "CPT80": cpt(correct, score, .8),
        "CPT90": cpt(correct, score, .9), "CPT95": cpt(correct, score, .95),
        "APGR": apgr(correct, score), "acc@0.25": acc_at_share(correct, score, .25),
        "perfect_CPT95": 0.95 * (1 - correct.mean()),
    }


def per_class_recall(y, pred):
    return {LABELS[c]: float((pred[y == c] == c).mean()) for c in range(len(LABELS)) if (y == c).any()}


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
