"""Embed masked texts of every split with MiniLM int8 (shoal catalog); write emb_{split}.npy."""
import json, time
import numpy as np
from shoal.models.onnx import OnnxEmbedder
e = OnnxEmbedder(model="minilm-l6-int8")
for s in ["train", "dev", "test"]:
    t = time.time()
    texts = [json.loads(l)["text"] for l in open(f"out/research-routing/masked_{s}.jsonl")]
    v = e.embed_sync(texts)
    np.save(f"out/research-routing/emb_{s}.npy", v)
    print(s, v.shape, f"{time.time()-t:.1f}s", np.linalg.norm(v, axis=1)[:3])
