#!/bin/sh
# Reproduce every number of the issue-13 report. Wall times measured on the 2-core box while a
# test suite was running (roughly halve them on an idle machine). Total ~12-15 min.
set -e
# Run from the repository root: docs/research/routing/run_all.sh
R=docs/research/routing
mkdir -p out/research-routing
PY=.venv/bin/python
$PY $R/mask_cache.py            # ~55 s  masked_{train,dev,test}.jsonl (hipaa_safe_harbor masker)
$PY $R/embed_cache.py           # ~35 s  emb_{split}.npy (MiniLM int8, 384-d)
$PY $R/step1_tune.py            # ~2.5 min  C / char analyzer by family-grouped CV on train
$PY $R/step1_local.py           # ~30 s  step 1 table (local accuracy, per-class recall)
$PY $R/redflags.py -v           # ~5 s   red-flag rules: hits / misses / false positives; writes red_flags.yaml
$PY $R/features.py              # ~40 s-2 min  OOF / dev / test probabilities + router features
$PY $R/step2_floor.py           # ~25 s  emergency floor (+ rules): share and emergencies caught
$PY $R/augment.py               # ~30 s  spec-informed synthetic rows (+ their embeddings)
$PY $R/features_aug.py          # ~1-3.5 min  same as features.py with augmented triage
$PY $R/compare_local.py         # ~2 s   local accuracy of every variant
$PY $R/step2b_stacked_floor.py  # ~10 s  stacked emergency score (shows the rule-feature leak)
$PY $R/step3_router.py          # ~25 s-2 min  router vs confidence, isotonic calibration
$PY $R/step3b_router.py         # ~70 s  router variants (base / augmented triage, +synthetic rows)
$PY $R/step3c_gap.py            # ~60 s  errors left at share 0.30, rank-average of routers
$PY $R/step4_combine.py         # ~8 s   floor + rules + router under 25 % share
$PY $R/onnx_check.py            # ~25 s  what converts with skl2onnx
$PY $R/onnx_check2.py           # ~15 s  HGB / CalibratedClassifierCV / isotonic-in-graph
$PY $R/onnx_hgb_patch.py        # ~10 s  HGB export with the add_node work-around
$PY $R/verify_char.py          # ~2 min  exportable recipe (analyzer="char") end to end, protocol B
