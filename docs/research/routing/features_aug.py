"""Like features.py, but every triage model is trained on real rows + the spec-informed synthetic
rows of augment.py (only those whose parents lie in the model's training folds). Writes
  oof_train_aug.npz / A_dev_aug.npz / A_test_aug.npz        (protocol A, aug from train)
  oof_trdv_aug.npz  / B_test_aug.npz                          (protocol B, aug from train+dev)
  oofsyn_train_aug.npz / oofsyn_trdv_aug.npz                  (held-out synthetic rows, OOF)"""
import json, time, numpy as np
from common import *
from features import feats, save


def aug_split(name):
    rows = [json.loads(l) for l in open(f"{W}/aug_{name}.jsonl")]
    s = Split.__new__(Split)
    s.name = "aug"; s.rows = rows
    s.text = s.raw = [r["text"] for r in rows]
    s.y = np.array([LABELS.index(r["label"]) for r in rows])
    s.fam = np.array(["aug_" + r["kind"] for r in rows])
    s.hard = np.ones(len(rows), bool)
    s.emb = np.load(f"{W}/aug_{name}_emb.npy").astype(np.float64)
    s.fold = np.array([r["fold"] for r in rows])
    return s


def run(real: Split, aug: Split, tag, evals):
    folds = grouped_folds(real)
    Xs = Ps = None; XS = PS = None
    for k, (a, b) in enumerate(folds):
        A = concat(subset(real, a), subset(aug, np.where(aug.fold != k)[0]))
        m = Triage().fit(A)
        P, X, names = feats(m, subset(real, b))
        hold = np.where(aug.fold == k)[0]
        Pa, Xa, _ = feats(m, subset(aug, hold))
        if Xs is None:
            Xs = np.zeros((len(real), X.shape[1])); Ps = {q: np.zeros((len(real), 7)) for q in P}
            XS = np.zeros((len(aug), X.shape[1])); PS = {q: np.zeros((len(aug), 7)) for q in P}
        Xs[b] = X; XS[hold] = Xa
        for q in P: Ps[q][b] = P[q]; PS[q][hold] = Pa[q]
    save(f"{W}/oof_{tag}_aug.npz", Ps, Xs, names, real)
    save(f"{W}/oofsyn_{tag}_aug.npz", PS, XS, names, aug)
    m = Triage().fit(concat(real, aug))
    for key, s in evals:
        save(f"{W}/{key}_aug.npz", *feats(m, s), s)


if __name__ == "__main__":
    t0 = time.time()
    tr, dv, te = Split("train"), Split("dev"), Split("test")
    run(tr, aug_split("train"), "train", [("A_dev", dv), ("A_test", te)]); print(f"A {time.time()-t0:.0f}s")
    run(concat(tr, dv), aug_split("trdv"), "trdv", [("B_test", te)]); print(f"B {time.time()-t0:.0f}s")
