"""Step 3c: what exports to ONNX (skl2onnx 1.20 / onnxruntime 1.32) and how closely it agrees.
 1. word+char TF-IDF LR: analyzer char_wb vs char (with locale C.UTF-8 + ASCII token pattern)
 2. MiniLM LR head (float[384] -> probabilities)
 3. router: LR pipeline / HistGradientBoosting on float features, + isotonic (CalibratedClassifierCV
    isotonic, bare IsotonicRegression, or a lookup table applied outside / inside the graph)."""
import time, warnings, numpy as np, onnxruntime as ort
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import StringTensorType, FloatTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import StandardScaler
from common import *
t0 = time.time()
tr, te = Split("train"), Split("test")

def run(model, feed):
    so = ort.SessionOptions(); so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = s.run(None, feed)
    return outs

def text_export(pipe, name):
    feats_union = pipe.named_steps["feats"]
    opts = {id(pipe.named_steps["clf"]): {"zipmap": False}}
    for _, v in feats_union.transformer_list:
        opts[id(v)] = {"locale": "C.UTF-8"} | ({"tokenexp": TOKEN_PATTERN} if v.analyzer == "word" else {})
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m = convert_sklearn(pipe, initial_types=[("text", StringTensorType([None, 1]))], options=opts)
        msgs = sorted({str(x.message)[:120] for x in w})
    except Exception as e:
        print(f"  {name}: conversion FAILED: {type(e).__name__}: {str(e)[:200]}"); return
    try:
        p = run(m, {"text": np.array(te.text, dtype=object).reshape(-1, 1)})[1]
    except Exception as e:
        print(f"  {name}: ORT run FAILED: {type(e).__name__}: {str(e)[:200]}"); return
    ref = pipe.predict_proba(te.text)
    print(f"  {name}: label agreement {np.mean(p.argmax(1)==ref.argmax(1)):.3f}, max |dp| {np.abs(p-ref).max():.3f}, "
          f"onnx acc {np.mean(p.argmax(1)==te.y):.3f} vs sklearn {np.mean(ref.argmax(1)==te.y):.3f}; warnings: {msgs}")

print("1. text models")
for an in ("char_wb", "char"):
    text_export(wordchar_pipe(analyzer=an).fit(tr.text, tr.y), f"word+{an}")
# variant: char n-grams on whitespace-normalised, lower-cased ascii text given to the model
import re
def norm(t): return re.sub(r"\s+", " ", t.lower())
p = wordchar_pipe(analyzer="char").fit([norm(t) for t in tr.text], tr.y)
te_text = te.text
te.text = [norm(t) for t in te_text]
text_export(p, "word+char on pre-normalised text (lower-case, single spaces)")
te.text = te_text

print("2. MiniLM LR head")
lr = emb_lr().fit(tr.emb, tr.y)
m = to_onnx(lr, tr.emb[:1].astype(np.float32), options={id(lr): {"zipmap": False}}, target_opset=17)
p = run(m, {"X": te.emb.astype(np.float32)})[1]
print(f"  agreement {np.mean(p.argmax(1)==lr.predict_proba(te.emb).argmax(1)):.3f}, max |dp| {np.abs(p-lr.predict_proba(te.emb)).max():.2e}")

print("3. router")
z, zt = np.load(f"{W}/oof_trdv.npz"), np.load(f"{W}/B_test.npz")
X, y, Xt = z["X"].astype(np.float32), (z["P_ens"].argmax(1) != z["y"]), zt["X"].astype(np.float32)
cands = {
    "LR pipeline": Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))]),
    "HistGradientBoosting": HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, min_samples_leaf=20, l2_regularization=1.0, random_state=0),
    "CalibratedClassifierCV(LR pipeline, isotonic)": CalibratedClassifierCV(Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))]), method="isotonic", cv=5),
    "CalibratedClassifierCV(HGB, isotonic)": CalibratedClassifierCV(HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, min_samples_leaf=20, random_state=0), method="isotonic", cv=5),
}
for name, est in cands.items():
    est.fit(X, y)
    ref = est.predict_proba(Xt)[:, 1]
    try:
        m = to_onnx(est, X[:1], options={id(est): {"zipmap": False}}, target_opset=17)
        p = run(m, {"X": Xt})[1][:, 1]
        print(f"  {name}: OK, max |dp| {np.abs(p-ref).max():.2e}, size {len(m.SerializeToString())/1024:.0f} KiB")
    except Exception as e:
        print(f"  {name}: FAILED {type(e).__name__}: {str(e)[:160]}")
iso = IsotonicRegression(out_of_bounds="clip").fit(cands["LR pipeline"].predict_proba(X)[:, 1], y)
try:
    m = to_onnx(iso, np.zeros((1,), np.float32), target_opset=17)
    print("  bare IsotonicRegression: converted")
except Exception as e:
    print(f"  bare IsotonicRegression: FAILED {type(e).__name__}: {str(e)[:160]}")
# lookup table: isotonic thresholds -> np.interp (what IsotonicRegression.predict does)
xs, ys = iso.X_thresholds_, iso.y_thresholds_
s = cands["LR pipeline"].predict_proba(Xt)[:, 1]
print(f"  isotonic as lookup table ({len(xs)} knots; np.interp(score, X_thresholds_, y_thresholds_)): "
      f"max |d| vs iso.predict {np.abs(np.interp(s, xs, ys) - iso.predict(s)).max():.1e}")
print(f"{time.time()-t0:.0f}s")
