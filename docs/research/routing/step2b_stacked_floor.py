"""Step 2b: a stacked emergency score for the floor: logistic regression on the router feature
vector (all models' P(emergency), clause-level P(emergency), kNN, rules...) predicting
'is emergency', cross-fitted on protocol-B OOF rows; floor for OOF recall 0.99 as in step 2."""
import numpy as np
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from common import *
from router_lib import L, NAMES

def fitp(X, y): return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))]).fit(X, y)
def pick_floor(y, local, s, target=0.99):
    em = y == EMER; v = np.where(local[em], np.inf, s[em])
    return float(np.sort(v)[::-1][int(np.ceil(target * em.sum())) - 1])
for LEAKFREE, triage in ((False, ""), (True, ""), (False, "_aug"), (True, "_aug")):
    zo, zt = L("oof_trdv" + triage), L("B_test" + triage)
    # augment the feature vector with the raw per-model emergency probabilities
    keep = [i for i, n in enumerate(NAMES) if not n.startswith("rule")] if LEAKFREE else list(range(len(NAMES)))
    def X(z): return np.column_stack([z["X"][:, keep], z["P_word"][:, EMER], z["P_wordchar"][:, EMER], z["P_emb"][:, EMER]])
    yo = zo["y"] == EMER
    so = np.zeros(len(yo))
    for a, b in GroupKFold(5).split(X(zo), groups=zo["fam"]):
        so[b] = fitp(X(zo)[a], yo[a]).predict_proba(X(zo)[b])[:, 1]
    st = fitp(X(zo), yo).predict_proba(X(zt))[:, 1]
    for nm, s_o, s_t in (("P_ens(emergency)", zo["P_ens"][:, EMER], zt["P_ens"][:, EMER]), ("stacked LR", so, st)):
        lo, lt = zo["P_ens"].argmax(1) == EMER, zt["P_ens"].argmax(1) == EMER
        f = pick_floor(zo["y"], lo, s_o)
        esc_o, esc_t = (s_o >= f) & ~lo, (s_t >= f) & ~lt
        emt = zt["y"] == EMER
        print(f"triage {'aug' if triage else 'base'} {'(no rule feats)' if LEAKFREE else '(rule feats)   '} {nm:18s} floor {f:.4f}: OOF share {esc_o.mean():.3f}; "
              f"test share {esc_t.mean():.3f}, test emergencies caught {int((lt | esc_t)[emt].sum())}/{emt.sum()}")
