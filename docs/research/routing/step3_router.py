"""Step 3: learned deferral router vs confidence routing.
Target: the ensemble's local answer is wrong. Router features (features.py) come from triage
models that never saw the row (family-grouped OOF). Protocol A: router trained on OOF(train),
measured on dev and test (triage fit on train). Protocol B: router trained on OOF(train+dev),
measured on test (triage fit on train+dev). Scores are ranked raw; isotonic is fitted on the OOF
scores (cross-fitted) for calibrated P(wrong) only."""
import time, numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.preprocessing import StandardScaler
from sklearn.model_selection import cross_val_predict, GroupKFold
from common import *
t0 = time.time()
Z = {k: dict(np.load(f"{W}/{k}.npz")) for k in ("oof_train", "A_dev", "A_test", "oof_trdv", "B_test")}
names = list(Z["oof_train"]["names"])
ALLN = [n for n in names if not n.startswith("rule")]   # rule_* features are leaky on OOF rows (see router_lib)

def wrong(z): return z["P_ens"].argmax(1) != z["y"]

def make(kind, cols):
    if kind == "lr":
        return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))])
    return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=0)

FEATSETS = {
    "all": ALLN,
    "no_knn": [n for n in ALLN if not n.startswith("knn")],
    "conf_only": ["ens_top", "ens_margin", "ens_entropy"],
}

def fit_router(kind, cols, z):
    idx = [names.index(c) for c in cols]
    m = make(kind, cols).fit(z["X"][:, idx], wrong(z))
    # cross-fitted scores on the training rows -> isotonic calibration map
    g = z["fam"]
    oof = cross_val_predict(make(kind, cols), z["X"][:, idx], wrong(z), groups=g,
                            cv=GroupKFold(5), method="predict_proba")[:, 1]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(oof, wrong(z))
    return m, idx, iso

def row(tag, correct, score):
    r = routing_summary(correct, score)
    return (f"{tag:34s} acc_local {correct.mean():.3f}  CPT50 {r['CPT50']:.3f} CPT80 {r['CPT80']:.3f} "
            f"CPT90 {r['CPT90']:.3f} CPT95 {r['CPT95']:.3f} (perfect {r['perfect_CPT95']:.3f})  "
            f"APGR {r['APGR']:.3f}  acc@.25 {r['acc@0.25']:.3f}")

results = {}
for proto, train_key, evals in (("A", "oof_train", ("A_dev", "A_test")), ("B", "oof_trdv", ("B_test",))):
    print(f"\n=== protocol {proto}: router trained on {train_key}")
    zt = Z[train_key]
    routers = {}
    for kind in ("lr", "hgb"):
        for fs in ("all", "no_knn", "conf_only"):
            if fs == "conf_only" and kind == "hgb": continue
            routers[f"{kind}/{fs}"] = fit_router(kind, FEATSETS[fs], zt)
    for k in evals:
        z = Z[k]; correct = ~wrong(z)
        print(f"-- {k}")
        print(row("confidence (1 - ens top prob)", correct, -z["P_ens"][:, :].max(1)))
        print(row("confidence (1 - word top prob)", z["P_word"].argmax(1) == z["y"], -z["P_word"].max(1)))
        print(row("margin (ens)", correct, -Z[k]["X"][:, names.index("ens_margin")]))
        for rn, (m, idx, iso) in routers.items():
            s = m.predict_proba(z["X"][:, idx])[:, 1]
            print(row(f"router {rn}", correct, s))
            results[(proto, k, rn)] = s
        # calibration of the isotonic map for the lr/all router
        m, idx, iso = routers["lr/all"]
        pc = iso.predict(m.predict_proba(z["X"][:, idx])[:, 1])
        print(f"   lr/all isotonic: mean P(wrong) {pc.mean():.3f} vs actual {wrong(z).mean():.3f}; "
              f"Brier {np.mean((pc - wrong(z))**2):.4f}; distinct values {len(np.unique(pc))}")
        s_iso = pc
        print(row("router lr/all ranked by isotonic", correct, s_iso))
    if proto == "B":
        m, idx, iso = routers["lr/all"]
        coef = m.named_steps["lr"].coef_[0]
        order = np.argsort(-np.abs(coef))[:12]
        print("lr/all top coefficients (standardised):", ", ".join(f"{FEATSETS['all'][i]} {coef[i]:+.2f}" for i in order))
np.save(f"{W}/router_scores.npy", results, allow_pickle=True)
print(f"{time.time()-t0:.0f}s")
