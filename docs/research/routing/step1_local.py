"""Step 1: local triage models (word TF-IDF LR = today, word+char TF-IDF LR, MiniLM LR, ensemble).
Fit on train -> dev and test; fit on train+dev -> test. Saves probabilities to probs_*.npz."""
import time, numpy as np
from common import *
t0 = time.time()
tr, dv, te = Split("train"), Split("dev"), Split("test")
def report(tag, P, s):
    for k in ("word", "wordchar", "emb", "ens", "ens3"):
        pred = P[k].argmax(1)
        r = per_class_recall(s.y, pred)
        hard = f"hard {np.mean(pred[s.hard]==s.y[s.hard]):.3f}" if s.hard.any() else ""
        print(f"{tag:18s} {k:9s} acc {np.mean(pred==s.y):.3f} {hard:10s} " +
              " ".join(f"{c[:6]}={v:.2f}" for c, v in r.items()))
m = Triage().fit(tr)
Pd, Pt = m.predict(dv), m.predict(te)
report("train->dev", Pd, dv); report("train->test", Pt, te)
np.savez(f"{W}/probs_train_dev.npz", **Pd); np.savez(f"{W}/probs_train_test.npz", **Pt)
m2 = Triage().fit(concat(tr, dv))
Pt2 = m2.predict(te)
report("train+dev->test", Pt2, te)
np.savez(f"{W}/probs_trdv_test.npz", **Pt2)
print(f"{time.time()-t0:.0f}s")
