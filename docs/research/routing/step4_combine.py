"""Step 4: emergency floor + red-flag rules + learned router under a total planner share of 0.25.
Everything is chosen on protocol-B OOF rows (train+dev, family-grouped; router scores cross-fitted):
  floor   : P_ens(emergency) >= f, f = largest value giving OOF emergency recall 0.99 for
            (local argmax == emergency) | (P >= f)
  rules   : redflags.py clean patterns (escalate)
  router  : escalate if router score >= t, t chosen so that OOF share of floor|rules|router = 0.25
Test: the same absolute thresholds (share may drift), and a fixed-budget variant (escalate the
mandatory set, then the highest router scores until exactly 25% -- uses no labels)."""
import sys, time, numpy as np
from common import *
from redflags import red_flags
from router_lib import L, fit, crossfit, wrong
t0 = time.time()
BUDGET = 0.25

def pick_floor(z, target=0.99):
    em = z["y"] == EMER; local = z["P_ens"].argmax(1) == EMER
    s = np.where(local[em], np.inf, z["P_ens"][em, EMER])
    return float(np.sort(s)[::-1][int(np.ceil(target * em.sum())) - 1])

def evaluate(z, texts, floor, t, score, fixed_budget=False, rules=True):
    y = z["y"]; pred = z["P_ens"].argmax(1); em = y == EMER
    must = (z["P_ens"][:, EMER] >= floor) & (pred != EMER)
    if rules:
        must |= np.array([bool(red_flags(x)) for x in texts]) & (pred != EMER)
    if fixed_budget:
        k = int(BUDGET * len(y)); esc = must.copy()
        for i in np.argsort(-score):
            if esc.sum() >= k: break
            esc[i] = True
    else:
        esc = must | (score >= t)
    correct = (pred == y) | esc
    return {"share": esc.mean(), "mandatory": must.mean(), "acc": correct.mean(),
            "em_recall": ((pred == EMER) | esc)[em].mean(), "em_missed": int((~((pred == EMER) | esc))[em].sum()),
            "acc_local": (pred == y).mean()}

def fmt(r):
    return (f"share {r['share']:.3f} (mandatory {r['mandatory']:.3f})  acc {r['acc']:.3f} (local {r['acc_local']:.3f})  "
            f"emergency recall {r['em_recall']:.3f} (missed {r['em_missed']})")

if __name__ == "__main__":
    te = Split("test")
    tr, dv = Split("train"), Split("dev")
    for proto, triage, use_syn in (("B", "", False), ("B", "_aug", False), ("B", "_aug", True), ("A", "", False), ("A", "_aug", False)):
        oofk = "oof_trdv" if proto == "B" else "oof_train"
        trdv_text = tr.text + dv.text if proto == "B" else tr.text
        zo, zt = L(oofk + triage), L(f"{proto}_test" + triage)
        syn = L(f"oofsyn_{oofk[4:]}_aug") if use_syn else None
        s_oof = crossfit("lr", zo, syn)
        router = fit("lr", [zo] + ([syn] if syn is not None else []))
        s_te = router(zt)
        floor = pick_floor(zo)
        # router threshold for total OOF share = BUDGET
        pred = zo["P_ens"].argmax(1)
        must = ((zo["P_ens"][:, EMER] >= floor) | np.array([bool(red_flags(x)) for x in trdv_text])) & (pred != EMER)
        k_extra = int(BUDGET * len(pred)) - must.sum()
        cand = np.sort(s_oof[~must])[::-1]
        t = float(cand[k_extra - 1]) if k_extra > 0 else np.inf
        name = ("augmented triage" if triage else "base triage") + (" + lr/all+syn router" if use_syn else " + lr/all router")
        print(f"\n=== protocol {proto} ({oofk} chooses everything), {name}: floor {floor:.4f}, router threshold {t:.4f} (OOF mandatory share {must.mean():.3f})")
        print("  OOF                    ", fmt(evaluate(zo, trdv_text, floor, t, s_oof)))
        if proto == "A":
            zd = L("A_dev" + triage)
            print("  dev, fixed thresholds  ", fmt(evaluate(zd, dv.text, floor, t, router(zd))))
            print("  dev, fixed budget 25%  ", fmt(evaluate(zd, dv.text, floor, t, router(zd), fixed_budget=True)))
        print("  test, fixed thresholds ", fmt(evaluate(zt, te.text, floor, t, s_te)))
        print("  test, fixed budget 25% ", fmt(evaluate(zt, te.text, floor, t, s_te, fixed_budget=True)))
        print("  test, no rules, budget ", fmt(evaluate(zt, te.text, floor, t, s_te, fixed_budget=True, rules=False)))
        r_pred = zt["P_ens"].argmax(1)
        miss = np.where((zt["y"] == EMER) & (r_pred != EMER) & (zt["P_ens"][:, EMER] < floor) & ~np.array([bool(red_flags(x)) for x in te.text]))[0]
        for i in miss:
            print(f"    not caught by floor/rules: P_em {zt['P_ens'][i, EMER]:.3f} router {s_te[i]:.2f} pred {LABELS[r_pred[i]]} | {te.text[i][:100]!r}")
        # router alone at share 0.25 and confidence routing alone, for reference
        for nm, sc in (("router only", s_te), ("confidence only", -zt["P_ens"].max(1))):
            r = evaluate(zt, te.text, 2.0, np.inf, sc, fixed_budget=True, rules=False)
            print(f"  test, {nm:15s} 25%", fmt(r))
    print(f"{time.time()-t0:.0f}s")
