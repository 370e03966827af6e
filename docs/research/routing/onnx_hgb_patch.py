"""HistGradientBoosting -> ONNX with skl2onnx 1.20 + onnx 1.23 fails ('Expected an int, got a
boolean': HGB's node['missing_go_to_left'] is passed as a bool into an INTS attribute). Work-around:
wrap skl2onnx.common.tree_ensemble.add_node to cast it to int before conversion."""
import numpy as np, onnxruntime as ort
import skl2onnx.common.tree_ensemble as te_mod
from skl2onnx import to_onnx
from sklearn.ensemble import HistGradientBoostingClassifier
from common import *

_orig = te_mod.add_node
def _add_node(*a, **kw):
    if "nodes_missing_value_tracks_true" in kw:
        kw["nodes_missing_value_tracks_true"] = int(kw["nodes_missing_value_tracks_true"])
    return _orig(*a, **kw)
te_mod.add_node = _add_node

z, zt = np.load(f"{W}/oof_trdv.npz"), np.load(f"{W}/B_test.npz")
X, y, Xt = z["X"].astype(np.float32), (z["P_ens"].argmax(1) != z["y"]), zt["X"].astype(np.float32)
hgb = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, min_samples_leaf=20,
                                     l2_regularization=1.0, random_state=0).fit(X, y)
m = to_onnx(hgb, X[:1], options={id(hgb): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
so = ort.SessionOptions(); so.log_severity_level = 3
p = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"X": Xt})[1][:, 1]
ref = hgb.predict_proba(Xt)[:, 1]
print(f"HGB with patched add_node: max |dp| {np.abs(p-ref).max():.2e}, size {len(m.SerializeToString())/1024:.0f} KiB")
Xn = Xt.copy(); Xn[::7, 3] = np.nan
p = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"X": Xn})[1][:, 1]
print(f"  with NaNs in a feature: max |dp| {np.abs(p-hgb.predict_proba(Xn)[:, 1]).max():.2e}")
