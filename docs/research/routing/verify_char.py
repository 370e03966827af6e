"""The exportable recipe end to end (protocol B): same as the base recipe but the character
TF-IDF uses analyzer='char' (skl2onnx converts it; 'char_wb' does not). Fits triage on family-
grouped OOF folds of train+dev and on all of train+dev, then floor/rules/router exactly as in
step4_combine.py, and reports local / routing / combined numbers on OOF and test."""
import time, numpy as np
import common
from common import *
t0 = time.time()
_orig = common.Triage.__init__
def _init(self, C_wc=10.0, C_emb=10.0, char_analyzer="char"):
    _orig(self, C_wc, C_emb, char_analyzer)
common.Triage.__init__ = _init
import features
from features import feats, save
features.Triage = common.Triage
tr, dv, te = Split("train"), Split("dev"), Split("test")
trdv = concat(tr, dv)
import os
if not os.path.exists(f"{W}/char_B_test.npz"):
    features.oof(trdv, f"{W}/char_oof_trdv.npz")
    m = common.Triage().fit(trdv)
    save(f"{W}/char_B_test.npz", *feats(m, te), te)
print(f"features {time.time()-t0:.0f}s")

from router_lib import L, fit, crossfit, wrong
import step4_combine as s4
zo, zt = L("char_oof_trdv"), L("char_B_test")
for nm, z in (("OOF", zo), ("test", zt)):
    p = z["P_ens"].argmax(1)
    print(f"{nm}: local acc {np.mean(p == z['y']):.3f}, emergency local recall {np.mean(p[z['y']==EMER]==EMER):.3f}")
s_oof = crossfit("lr", zo); s_te = fit("lr", [zo])(zt)
for nm, z, s in (("OOF", zo, s_oof), ("test", zt, s_te)):
    for rn, sc in (("confidence", -z["P_ens"].max(1)), ("router lr", s)):
        r = routing_summary(~wrong(z), sc)
        print(f"  {nm:4s} {rn:10s} CPT50 {r['CPT50']:.3f} CPT80 {r['CPT80']:.3f} CPT90 {r['CPT90']:.3f} CPT95 {r['CPT95']:.3f} "
              f"(perfect {r['perfect_CPT95']:.3f}) APGR {r['APGR']:.3f} acc@.25 {r['acc@0.25']:.3f}")
floor = s4.pick_floor(zo)
from redflags import red_flags
pred = zo["P_ens"].argmax(1)
must = ((zo["P_ens"][:, EMER] >= floor) | np.array([bool(red_flags(x)) for x in trdv.text])) & (pred != EMER)
k = int(0.25 * len(pred)) - must.sum()
t = float(np.sort(s_oof[~must])[::-1][k - 1]) if k > 0 else np.inf
print(f"floor {floor:.4f}, router threshold {t:.4f}")
print("  OOF                    ", s4.fmt(s4.evaluate(zo, trdv.text, floor, t, s_oof)))
print("  test, fixed thresholds ", s4.fmt(s4.evaluate(zt, te.text, floor, t, s_te)))
print("  test, fixed budget 25% ", s4.fmt(s4.evaluate(zt, te.text, floor, t, s_te, fixed_budget=True)))
print(f"{time.time()-t0:.0f}s")
