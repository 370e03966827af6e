"""Step 3b: router variants. Base triage (features.py) or augmented triage (features_aug.py);
router trained on real OOF rows, optionally + held-out synthetic rows (oofsyn_*). Ranked by raw
router score. Prints routing metrics on the 'dev' sets (A_dev; OOF real rows of protocol B via an
inner family-grouped cross-fit) and on test."""
import sys, time, numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.model_selection import GroupKFold
from common import *
t0 = time.time()
def L(k): return dict(np.load(f"{W}/{k}.npz"))
names = list(L("oof_train")["names"])
def wrong(z): return z["P_ens"].argmax(1) != z["y"]

def make(kind, C=0.3):
    if kind == "lr":
        return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=C, max_iter=5000))])
    return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=0)
FS = {"all": [n for n in names if not n.startswith("rule")], "all+rules(leaky)": names, "conf_only": ["ens_top", "ens_margin", "ens_entropy"],
      "no_clause_rule": [n for n in names if not n.startswith(("clause", "n_clauses", "rule"))]}

def fit(kind, cols, zs, wsyn=1.0):
    idx = [names.index(c) for c in cols]
    X = np.vstack([z["X"][:, idx] for z, _ in zs]); y = np.concatenate([wrong(z) for z, _ in zs])
    w = np.concatenate([np.full(len(z["y"]), wsyn if syn else 1.0) for z, syn in zs])
    m = make(kind)
    if kind == "lr": m.fit(X, y, lr__sample_weight=w)
    else: m.fit(X, y, sample_weight=w)
    return lambda z: m.predict_proba(z["X"][:, idx])[:, 1]

def crossfit(kind, cols, z, syn=None, wsyn=1.0):
    """Router scores on the real OOF rows of z via family-grouped inner 5-fold (for B's 'dev')."""
    out = np.zeros(len(z["y"]))
    for a, b in GroupKFold(5).split(z["X"], groups=z["fam"]):
        za = {k: v[a] for k, v in z.items() if k not in ("names",)}
        parts = [(za, False)] + ([(syn, True)] if syn is not None else [])
        out[b] = fit(kind, cols, parts, wsyn)({k: v[b] for k, v in z.items() if k != "names"})
    return out

def fmt(correct, score):
    r = routing_summary(correct, score)
    return (f"acc {correct.mean():.3f} CPT50 {r['CPT50']:.2f} CPT80 {r['CPT80']:.2f} CPT90 {r['CPT90']:.2f} "
            f"CPT95 {r['CPT95']:.3f} (perf {r['perfect_CPT95']:.3f}) APGR {r['APGR']:.3f} acc@.25 {r['acc@0.25']:.3f}")

for triage in ("", "_aug"):
    A_tr, A_dev, A_te = L("oof_train" + triage), L("A_dev" + triage), L("A_test" + triage)
    B_tr, B_te = L("oof_trdv" + triage), L("B_test" + triage)
    synA = L("oofsyn_train_aug") if triage else None
    synB = L("oofsyn_trdv_aug") if triage else None
    print(f"\n##### triage {'augmented' if triage else 'base'}")
    for nm, z in (("A dev", A_dev), ("B oof", B_tr), ("A test", A_te), ("B test", B_te)):
        print(f"  {'confidence':26s} {nm:6s} {fmt(~wrong(z), -z['P_ens'].max(1))}")
    cfgs = [("lr", "conf_only", False), ("lr", "all", False), ("hgb", "all", False), ("lr", "no_clause_rule", False), ("lr", "all+rules(leaky)", False)]
    if triage: cfgs += [("lr", "all", True), ("hgb", "all", True), ("lr", "no_clause_rule", True), ("lr", "all+rules(leaky)", True)]
    for kind, fs, use_syn in cfgs:
        tag = f"{kind}/{fs}{'+syn' if use_syn else ''}"
        fA = fit(kind, FS[fs], [(A_tr, False)] + ([(synA, True)] if use_syn else []))
        fB = fit(kind, FS[fs], [(B_tr, False)] + ([(synB, True)] if use_syn else []))
        sB_oof = crossfit(kind, FS[fs], B_tr, synB if use_syn else None)
        print(f"  {tag:26s} A dev  {fmt(~wrong(A_dev), fA(A_dev))}")
        print(f"  {tag:26s} B oof  {fmt(~wrong(B_tr), sB_oof)}")
        print(f"  {tag:26s} A test {fmt(~wrong(A_te), fA(A_te))}")
        print(f"  {tag:26s} B test {fmt(~wrong(B_te), fB(B_te))}")
print(f"{time.time()-t0:.0f}s")
