"""Rebuild the input guard's packaged classifier: ``python tools/guard/build_guard.py``.

Trains TF-IDF + logistic regression on ``guard_train.jsonl`` (beside this file) and writes the
packaged ``src/shoal/agents/data/guard.onnx`` with its sidecar ``guard.onnx.json``, then prints
the held-out metrics. The split and the model are deterministic for the same data and seed;
the sidecar's ``created`` and ``versions`` change on every build.

``--data`` and ``--out`` train a guard of your own from other data; its labels must include
``allow`` for the ``input_guard`` agent to use it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shoal.models.train import train_text_classifier

HERE = Path(__file__).resolve().parent
DATA = HERE / "guard_train.jsonl"
OUT = HERE.parents[1] / "src" / "shoal" / "agents" / "data" / "guard.onnx"
"""The trained artefact ships in the package; its data and this script do not."""
TEST_SIZE = 0.2
SEED = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/guard/build_guard.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--test-size", type=float, default=TEST_SIZE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    report = train_text_classifier(args.data, args.out, test_size=args.test_size, seed=args.seed)
    print(f"wrote {report.model_path} ({report.model_path.stat().st_size} bytes) and "
          f"{report.sidecar_path}; {report.n_examples} examples, labels {report.labels}")
    print(json.dumps(report.metrics.model_dump(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
