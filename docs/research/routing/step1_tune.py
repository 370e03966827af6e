"""Step 1a: pick hyper-parameters by family-grouped 5-fold CV on train (no dev/test involved)."""
import time, numpy as np
from common import *
t0 = time.time()
tr = Split("train")
folds = grouped_folds(tr)
def cv(make, use_emb=False):
    P = np.zeros((len(tr), len(LABELS)))
    for a, b in folds:
        A, B = subset(tr, a), subset(tr, b)
        m = make()
        if use_emb: m.fit(A.emb, A.y); P[b] = m.predict_proba(B.emb)
        else: m.fit(A.text, A.y); P[b] = m.predict_proba(B.text)
    return P
res = {}
res["word C10"] = cv(lambda: word_pipe(10))
for C in (3, 10, 30):
    res[f"wordchar_wb C{C}"] = cv(lambda: wordchar_pipe(C))
res["wordchar(char) C10"] = cv(lambda: wordchar_pipe(10, analyzer="char"))
for C in (1, 10, 100):
    res[f"emb C{C}"] = cv(lambda: emb_lr(C), True)
for k, P in res.items():
    pred = P.argmax(1); ll = -np.log(np.clip(P[np.arange(len(tr)), tr.y], 1e-12, 1)).mean()
    print(f"{k:22s} acc {np.mean(pred==tr.y):.3f} logloss {ll:.3f} emer-rec {np.mean(pred[tr.y==EMER]==EMER):.3f}")
for a in ("wordchar_wb C10", "wordchar_wb C30"):
    for b in ("emb C10", "emb C100"):
        P = (res[a] + res[b]) / 2; pred = P.argmax(1)
        print(f"ens {a}+{b}: acc {np.mean(pred==tr.y):.3f} emer-rec {np.mean(pred[tr.y==EMER]==EMER):.3f}")
print(f"{time.time()-t0:.0f}s")
