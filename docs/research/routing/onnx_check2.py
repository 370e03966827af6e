"""Follow-ups: HistGradientBoosting with ai.onnx.ml opset 3; how wrong CalibratedClassifierCV(isotonic)
is in ONNX; isotonic lookup table as ONNX ops appended to the LR router graph."""
import numpy as np, onnxruntime as ort, onnx
from onnx import helper, numpy_helper, TensorProto
from skl2onnx import to_onnx
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import StandardScaler
from common import *

def run(model, feed):
    so = ort.SessionOptions(); so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feed)

z, zt = np.load(f"{W}/oof_trdv.npz"), np.load(f"{W}/B_test.npz")
X, y, Xt = z["X"].astype(np.float32), (z["P_ens"].argmax(1) != z["y"]), zt["X"].astype(np.float32)
hgb = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200, min_samples_leaf=20, l2_regularization=1.0, random_state=0).fit(X, y)
for ml in (1, 2, 3, 4, 5):
    try:
        m = to_onnx(hgb, X[:1], options={id(hgb): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": ml})
        p = run(m, {"X": Xt})[1][:, 1]
        print(f"HGB ai.onnx.ml={ml}: OK max |dp| {np.abs(p - hgb.predict_proba(Xt)[:, 1]).max():.2e}")
    except Exception as e:
        print(f"HGB ai.onnx.ml={ml}: FAILED {type(e).__name__}: {str(e)[-150:]!r}")

lr = Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.3, max_iter=5000))])
cal = CalibratedClassifierCV(lr, method="isotonic", cv=5).fit(X, y)
m = to_onnx(cal, X[:1], options={id(cal): {"zipmap": False}}, target_opset=17)
p = run(m, {"X": Xt})[1][:, 1]; ref = cal.predict_proba(Xt)[:, 1]
d = np.abs(p - ref)
print(f"CalibratedClassifierCV isotonic: rows with |dp|>0.01: {np.mean(d>0.01):.1%}, >0.1: {np.mean(d>0.1):.1%}; "
      f"rank corr {np.corrcoef(np.argsort(np.argsort(p)), np.argsort(np.argsort(ref)))[0,1]:.3f}")
cal_s = CalibratedClassifierCV(lr, method="sigmoid", cv=5).fit(X, y)
m = to_onnx(cal_s, X[:1], options={id(cal_s): {"zipmap": False}}, target_opset=17)
p = run(m, {"X": Xt})[1][:, 1]
print(f"CalibratedClassifierCV sigmoid: max |dp| {np.abs(p - cal_s.predict_proba(Xt)[:, 1]).max():.2e}")

# LR router + isotonic lookup appended in ONNX: score -> interp over knots (piecewise linear)
lr.fit(X, y)
from sklearn.model_selection import cross_val_predict
oof = cross_val_predict(lr, X, y, cv=5, method="predict_proba")[:, 1]
iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(oof, y)
xs, ys = iso.X_thresholds_.astype(np.float32), iso.y_thresholds_.astype(np.float32)
base = to_onnx(lr, X[:1], options={id(lr): {"zipmap": False}}, target_opset=17)
g = base.graph
prob_name = g.output[1].name
# piecewise-linear interpolation with clipping:
#   s = clip(score, x0, xn); i = sum(s >= xs[1:-1]) ; t = (s - xs[i])/(xs[i+1]-xs[i]); y = ys[i] + t*(ys[i+1]-ys[i])
nodes = [
    helper.make_node("Gather", [prob_name, "one"], ["score"], axis=1),             # (n,1)
    helper.make_node("Clip", ["score", "x0", "xn"], ["sc"]),
    helper.make_node("GreaterOrEqual", ["sc", "inner"], ["ge"]),                     # (n,k-2)
    helper.make_node("Cast", ["ge"], ["gei"], to=TensorProto.INT64),
    helper.make_node("ReduceSum", ["gei", "axis1"], ["idx"], keepdims=1),           # (n,1)
    helper.make_node("Gather", ["xs", "idx"], ["xl"], axis=0),
    helper.make_node("Gather", ["dx", "idx"], ["dxi"], axis=0),
    helper.make_node("Gather", ["ys", "idx"], ["yl"], axis=0),
    helper.make_node("Gather", ["dy", "idx"], ["dyi"], axis=0),
    helper.make_node("Sub", ["sc", "xl"], ["off"]),
    helper.make_node("Div", ["off", "dxi"], ["t"]),
    helper.make_node("Mul", ["t", "dyi"], ["inc"]),
    helper.make_node("Add", ["yl", "inc"], ["p_wrong_2d"]),
    helper.make_node("Squeeze", ["p_wrong_2d", "axis1"], ["p_wrong"]),
]
dx = np.diff(xs); dx[dx == 0] = 1.0
inits = [numpy_helper.from_array(np.array([1], np.int64), "one"),
         numpy_helper.from_array(xs[:1].reshape(()), "x0"), numpy_helper.from_array(xs[-1:].reshape(()), "xn"),
         numpy_helper.from_array(xs[1:-1].reshape(1, -1), "inner"), numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(xs[:-1], "xs"), numpy_helper.from_array(dx.astype(np.float32), "dx"),
         numpy_helper.from_array(ys[:-1], "ys"), numpy_helper.from_array(np.diff(ys).astype(np.float32), "dy")]
g.node.extend(nodes); g.initializer.extend(inits)
g.output.append(helper.make_tensor_value_info("p_wrong", TensorProto.FLOAT, [None]))
onnx.checker.check_model(base)
outs = run(base, {"X": Xt})
ref = iso.predict(lr.predict_proba(Xt)[:, 1])
print(f"LR router + isotonic lookup in-graph ({len(xs)} knots): max |dp_wrong| {np.abs(outs[-1] - ref).max():.2e}")
onnx.save(base, f"{W}/router_lr_isotonic.onnx")
