"""Per-message probabilities and router features, computed so that no row's features come from a
model that saw the row:

  oof_train.npz      5-fold family-grouped OOF over train        (protocol A: router trained here)
  A_dev.npz          triage fit on train -> dev                   (protocol A: thresholds here)
  A_test.npz         triage fit on train -> test
  oof_trdv.npz       5-fold family-grouped OOF over train+dev    (protocol B: router + thresholds)
  B_test.npz         triage fit on train+dev -> test
Each file holds P_<model> (n,7) for word/wordchar/emb/ens/ens3, a feature matrix X, its names, y.
"""
import re, time, numpy as np
from common import *

K = 10
TOK = re.compile(TOKEN_PATTERN)
CLAUSE = re.compile(r"[.?!;:\n]+|\b(?:also|but|and|plus|ps)\b", re.I)
MASK = re.compile(r"\[[A-Z_]+_\d+\]")


def clauses(text):
    """Clauses with at least 3 word tokens (mask tokens removed)."""
    out = []
    for c in CLAUSE.split(MASK.sub(" ", text)):
        if len(re.findall(r"[a-zA-Z]{2,}", c)) >= 3:
            out.append(c.strip())
    return out


def feats(m: Triage, s: Split):
    P = m.predict(s)
    cols, names = [], []
    def add(name, v):
        names.append(name); cols.append(np.asarray(v, dtype=float))
    for k in ("word", "wordchar", "emb", "ens"):
        p = P[k]; srt = np.sort(p, 1)
        add(f"{k}_top", srt[:, -1]); add(f"{k}_margin", srt[:, -1] - srt[:, -2]); add(f"{k}_entropy", entropy(p))
    pred = P["ens"].argmax(1)
    add("dis_wc_emb", P["wordchar"].argmax(1) != P["emb"].argmax(1))
    add("dis_word_ens", P["word"].argmax(1) != pred)
    add("l1_wc_emb", np.abs(P["wordchar"] - P["emb"]).sum(1))
    add("p_emergency", P["ens"][:, EMER])
    add("pmax_emergency", np.maximum(P["wordchar"][:, EMER], P["emb"][:, EMER]))
    # kNN in MiniLM space (cosine; vectors are L2-normalised) over the model's training rows
    sims = s.emb @ m.train_emb.T
    nn = np.argsort(-sims, 1)[:, :K]
    nsim = np.take_along_axis(sims, nn, 1)
    nlab = m.train_y[nn]
    add("knn_agree", (nlab == pred[:, None]).mean(1))
    add("knn_agree_w", (nsim * (nlab == pred[:, None])).sum(1) / nsim.sum(1))
    add("knn_mean_dist", 1 - nsim.mean(1))
    add("knn_top1_sim", nsim[:, 0])
    add("knn_top1_agree", nlab[:, 0] == pred)
    # clause-level: classify each clause with the TF-IDF models (word+char and word, averaged)
    cl = [clauses(t) for t in s.text]
    flat = [c for cs in cl for c in cs]
    Pc = (m.wc.predict_proba(flat) + m.w.predict_proba(flat)) / 2 if flat else np.zeros((0, 7))
    other, ndist, cem, ncl = [], [], [], []
    j = 0
    for i, cs in enumerate(cl):
        pc = Pc[j:j + len(cs)]; j += len(cs)
        ncl.append(len(cs))
        if len(cs) == 0:
            other.append(0.0); ndist.append(0); cem.append(0.0); continue
        mask = np.ones(7, bool); mask[pred[i]] = False
        other.append(float(pc[:, mask].max()))
        ndist.append(len({int(a) for a, t in zip(pc.argmax(1), pc.max(1)) if t >= 0.4}))
        cem.append(float(pc[:, EMER].max()))
    add("clause_other_max", other)   # strongest clause vote for a label other than the prediction
    add("clause_n_labels", ndist)    # distinct confident clause labels
    add("clause_p_emergency", cem)
    add("n_clauses", np.log1p(ncl))
    # red-flag rules (clean patterns): fires, and fires only negated
    from redflags import red_flags, normalise, _CLEAN, _negated
    fires, neg = [], []
    for t in s.text:
        nt = normalise(t)
        f = n = False
        for _, rx in _CLEAN:
            for mt in rx.finditer(nt):
                if _negated(nt, mt.start(), mt.end()): n = True
                else: f = True
        fires.append(f); neg.append(n and not f)
    add("rule_fires", fires)
    add("rule_negated_only", neg)
    add("rule_vs_pred", np.array(fires) != (pred == EMER))
    # text
    toks = [TOK.findall(t.lower()) for t in s.text]
    add("n_chars", np.log1p([len(t) for t in s.text]))
    add("n_tokens", np.log1p([len(t) for t in toks]))
    add("oov_share", [np.mean([w not in m.vocab for w in t]) if t else 1.0 for t in toks])
    for c in range(len(LABELS)):
        add(f"pred_{LABELS[c]}", pred == c)
    return P, np.column_stack(cols), names


def save(path, P, X, names, s):
    np.savez(path, X=X, names=np.array(names), y=s.y, fam=s.fam, hard=s.hard,
             **{f"P_{k}": v for k, v in P.items()})


def oof(s: Split, path):
    Ps, Xs = {}, None
    for i, (a, b) in enumerate(grouped_folds(s)):
        m = Triage().fit(subset(s, a))
        P, X, names = feats(m, subset(s, b))
        if Xs is None:
            Xs = np.zeros((len(s), X.shape[1])); Ps = {k: np.zeros((len(s), 7)) for k in P}
        Xs[b] = X
        for k in P: Ps[k][b] = P[k]
    save(path, Ps, Xs, names, s)


if __name__ == "__main__":
    t0 = time.time()
    tr, dv, te = Split("train"), Split("dev"), Split("test")
    trdv = concat(tr, dv)
    oof(tr, f"{W}/oof_train.npz"); print("oof train", f"{time.time()-t0:.0f}s")
    oof(trdv, f"{W}/oof_trdv.npz"); print("oof train+dev", f"{time.time()-t0:.0f}s")
    mA = Triage().fit(tr)
    save(f"{W}/A_dev.npz", *feats(mA, dv), dv); save(f"{W}/A_test.npz", *feats(mA, te), te)
    mB = Triage().fit(trdv)
    save(f"{W}/B_test.npz", *feats(mB, te), te)
    print(f"done {time.time()-t0:.0f}s")
