"""Local accuracy (ensemble argmax) and emergency recall for every stored prediction file:
real OOF (the 'dev' of protocol B), dev, synthetic held-out rows, and test (final)."""
import numpy as np
from common import *
files = ["oof_train", "oof_train_aug", "oofsyn_train_aug", "A_dev", "A_dev_aug", "A_test", "A_test_aug",
         "oof_trdv", "oof_trdv_aug", "oofsyn_trdv_aug", "B_test", "B_test_aug"]
for f in files:
    z = np.load(f"{W}/{f}.npz")
    y, hard = z["y"], z["hard"]
    parts = []
    for k in ("word", "wordchar", "emb", "ens", "ens3"):
        p = z[f"P_{k}"].argmax(1)
        parts.append(f"{k} {np.mean(p==y):.3f}")
    p = z["P_ens"].argmax(1)
    em = y == EMER
    extra = f" | ens hard {np.mean(p[hard]==y[hard]):.3f} non-hard {np.mean(p[~hard]==y[~hard]):.3f}" if hard.any() and (~hard).any() else ""
    print(f"{f:18s} n={len(y):4d} " + "  ".join(parts) + f" | ens emerg recall {np.mean(p[em]==EMER) if em.any() else float('nan'):.3f}" + extra)
z = np.load(f"{W}/oofsyn_trdv_aug.npz"); p = z["P_ens"].argmax(1)
for kind in np.unique(z["fam"]):
    m = z["fam"] == kind; print(f"   synthetic held-out {kind:14s} ens acc {np.mean(p[m]==z['y'][m]):.3f} (n={m.sum()})")
