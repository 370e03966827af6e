"""Router fitting helpers shared by step4 / final_recipe."""
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.model_selection import GroupKFold
from common import *

def L(k): return dict(np.load(f"{W}/{k}.npz"))
NAMES = list(L("oof_train")["names"])
# The red-flag rules were written from train+dev texts, so on OOF rows rule_* features are leaky
# (they fire on 100% of train+dev emergencies, far less on unseen families). Routers use the rest.
NOLEAK = [n for n in NAMES if not n.startswith("rule")]
def wrong(z): return z["P_ens"].argmax(1) != z["y"]

def make(kind):
    if kind == "lr":
        return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))])
    return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=0)

def fit(kind, zs, cols=NOLEAK):
    idx = [NAMES.index(c) for c in cols]
    X = np.vstack([z["X"][:, idx] for z in zs]); y = np.concatenate([wrong(z) for z in zs])
    m = make(kind).fit(X, y)
    f = lambda z: m.predict_proba(z["X"][:, idx])[:, 1]
    f.model = m
    return f

def crossfit(kind, z, syn=None, cols=NOLEAK):
    """Router scores on z's rows from routers that never saw the row's family (inner 5-fold)."""
    out = np.zeros(len(z["y"]))
    for a, b in GroupKFold(5).split(z["X"], groups=z["fam"]):
        za = {k: v[a] for k, v in z.items() if k != "names"}
        out[b] = fit(kind, [za] + ([syn] if syn is not None else []), cols)({k: v[b] for k, v in z.items() if k != "names"})
    return out
