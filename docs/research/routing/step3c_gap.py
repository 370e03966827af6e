"""How far the routers are from CPT95 <= 0.30 on test: errors still local at share 0.30, and a
rank-average of the LR and HGB routers (selected on OOF like the rest)."""
import numpy as np
from scipy.stats import rankdata
from common import *
from router_lib import L, fit, crossfit, wrong
for triage, use_syn in (("", False), ("_aug", False), ("_aug", True)):
    zo, zt = L("oof_trdv" + triage), L("B_test" + triage)
    syn = L("oofsyn_trdv_aug") if use_syn else None
    extra = [syn] if syn is not None else []
    S = {}
    S["confidence"] = (-zo["P_ens"].max(1), -zt["P_ens"].max(1))
    for kind in ("lr", "hgb"):
        S[kind] = (crossfit(kind, zo, syn), fit(kind, [zo] + extra)(zt))
    S["rankavg(lr,hgb)"] = tuple(rankdata(S["lr"][i]) + rankdata(S["hgb"][i]) for i in (0, 1))
    print(f"=== triage {'aug' if triage else 'base'}{' (+syn router rows)' if use_syn else ''}")
    for nm, (so, st) in S.items():
        for tag, z, s in (("OOF ", zo, so), ("test", zt, st)):
            c = ~wrong(z); n = len(c); k = int(0.30 * n)
            order = np.argsort(-s, kind="stable")
            left = int((~c[order[k:]]).sum()); tot = int((~c).sum())
            r = routing_summary(c, s)
            print(f"  {nm:16s} {tag} errors {tot:3d}, still local at share 0.30: {left:2d} (CPT95 needs <= {tot - int(np.ceil(0.95 * tot))}); "
                  f"CPT80 {r['CPT80']:.2f} CPT90 {r['CPT90']:.2f} CPT95 {r['CPT95']:.3f} APGR {r['APGR']:.3f} acc@.25 {r['acc@0.25']:.3f}")
