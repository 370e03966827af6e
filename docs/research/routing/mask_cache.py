"""Mask all splits with the hipaa_safe_harbor detector once; write out/research-routing/masked_{split}.jsonl."""
import json, time
from shoal.policies import privacy
D = "examples/healthcare/data"
d = privacy.detector("hipaa_safe_harbor")
for s in ["train", "dev", "test"]:
    t = time.time()
    rows = [json.loads(l) for l in open(f"{D}/{s}.jsonl") if l.strip()]
    with open(f"out/research-routing/masked_{s}.jsonl", "w") as f:
        for r in rows:
            r["raw"] = r["text"]; r["text"] = d.mask(r["text"]).masked
            f.write(json.dumps(r) + "\n")
    print(s, len(rows), f"{time.time()-t:.1f}s")
