"""Step 2: emergency floor. Escalate any message whose emergency score >= floor, floor chosen on
family-grouped OOF predictions (train+dev, protocol B; train OOF + dev, protocol A) so that the
ML path alone (local argmax == emergency, or score >= floor) reaches recall 0.99. Red-flag rules
(redflags.py) are added on top (they were written from train+dev, so they cannot pick the floor).
Reports the share each part costs and the emergencies it catches on dev and test."""
import time, numpy as np
from common import *
from redflags import red_flags
t0 = time.time()
tr, dv, te = Split("train"), Split("dev"), Split("test")
Z = {k: np.load(f"{W}/{k}.npz") for k in ("oof_train", "A_dev", "A_test", "oof_trdv", "B_test")}

# dedicated binary emergency detector: LR on [MiniLM | word+char tfidf], OOF on the same folds
from scipy.sparse import hstack, csr_matrix
def bin_fit_predict(A, B):
    vec = wordchar_pipe().named_steps["feats"]
    XA = hstack([vec.fit_transform(A.text), csr_matrix(A.emb)]).tocsr()
    XB = hstack([vec.transform(B.text), csr_matrix(B.emb)]).tocsr()
    clf = LogisticRegression(C=10, max_iter=3000, class_weight="balanced").fit(XA, A.y == EMER)
    return clf.predict_proba(XB)[:, 1]
def bin_oof(s):
    out = np.zeros(len(s))
    for a, b in grouped_folds(s):
        out[b] = bin_fit_predict(subset(s, a), subset(s, b))
    return out
trdv = concat(tr, dv)
BIN = {"oof_train": bin_oof(tr), "oof_trdv": bin_oof(trdv),
       "A_dev": bin_fit_predict(tr, dv), "A_test": bin_fit_predict(tr, te), "B_test": bin_fit_predict(trdv, te)}

def scores(k):
    z = Z[k]
    return {"ens": z["P_ens"][:, EMER], "ens3": z["P_ens3"][:, EMER],
            "max(wc,emb)": np.maximum(z["P_wordchar"][:, EMER], z["P_emb"][:, EMER]),
            "binary": BIN[k]}

def pick_floor(local_em, score, y, target=0.99):
    """Largest floor such that recall of (local_em | score >= floor) >= target."""
    em = y == EMER
    need = int(np.ceil(target * em.sum()))
    s = np.where(local_em[em], np.inf, score[em])
    return float(np.sort(s)[::-1][need - 1])

def measure(z, score, floor, texts, extra):
    y = z["y"]; em = y == EMER
    local_em = z["P_ens"].argmax(1) == EMER
    flo = (score >= floor) & ~local_em
    rf = np.array([bool(red_flags(t, extra)) for t in texts]) & ~local_em
    out = {}
    for name, esc in (("local", np.zeros_like(flo)), ("+floor", flo), ("+rules", rf), ("+floor+rules", flo | rf)):
        caught = local_em | esc
        out[name] = (int(caught[em].sum()), int(em.sum()), float(esc.mean()))
    return out

texts = {"A_dev": dv.text, "A_test": te.text, "B_test": te.text}
for proto, fit_sets, evals in (("A", ("oof_train", "A_dev"), ("A_dev", "A_test")), ("B", ("oof_trdv",), ("B_test",))):
    y_fit = np.concatenate([Z[k]["y"] for k in fit_sets])
    local_fit = np.concatenate([Z[k]["P_ens"].argmax(1) == EMER for k in fit_sets])
    print(f"\n=== protocol {proto}: floor chosen on {'+'.join(fit_sets)} ({int((y_fit==EMER).sum())} emergencies)")
    for sname in ("ens", "ens3", "max(wc,emb)", "binary"):
        sc_fit = np.concatenate([scores(k)[sname] for k in fit_sets])
        floor = pick_floor(local_fit, sc_fit, y_fit)
        fit_share = float(((sc_fit >= floor) & ~local_fit).mean())
        print(f"  score {sname:12s} floor {floor:.4f} (share on fit set {fit_share:.1%})")
        for k in evals:
            for extra in (False, True):
                if k == "A_dev" and extra: continue
                r = measure(Z[k], scores(k)[sname], floor, texts[k], extra)
                print(f"    {k:7s} rules={'clean+extra' if extra else 'clean'}: " + "  ".join(
                    f"{n}: {c}/{t} em, share {s:.1%}" for n, (c, t, s) in r.items()))
print(f"{time.time()-t0:.0f}s")
