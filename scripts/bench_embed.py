#!/usr/bin/env python3
"""Embedding throughput: quiver-embed vs sentence-transformers (torch, CPU) on the same texts,
same model (all-MiniLM-L6-v2), same batch size and thread count, in the same run. Also checks
that both produce the same vectors (cosine). Prints a Markdown table for BENCHMARKS.md.

    scripts/bench_embed.sh [--texts N] [--batch B] [--threads T] [--rounds R] [--file F]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "..", "shared", "datasets", "wn-gloss", "texts_base.txt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--file", default=os.environ.get("QUIVER_TEXTS", DATA))
    ap.add_argument("--model", default=os.environ.get("QUIVER_MINILM_DIR"))
    a = ap.parse_args()
    texts = open(a.file).read().splitlines()[: a.texts]

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    st = SentenceTransformer(a.model, device="cpu")
    st.encode(texts[: a.batch], batch_size=a.batch)  # warm up
    st_times = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        ref = st.encode(texts, batch_size=a.batch, convert_to_numpy=True, normalize_embeddings=False)
        st_times.append(time.perf_counter() - t)

    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "bench_embed")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "v.f32")
        env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
        line = subprocess.run(
            [exe, a.model, a.file, "--texts", str(len(texts)), "--batch", str(a.batch), "--rounds", str(a.rounds), "--out", out],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        q = json.loads(line)
        ours = np.fromfile(out, dtype="<f4").reshape(len(texts), -1)
    cos = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    st_best = min(st_times)
    st_tps = len(texts) / st_best
    lens = [len(st.tokenizer(t)["input_ids"]) for t in texts[:1000]]
    print(
        f"{len(texts)} texts of {os.path.basename(a.file)} (mean {np.mean(lens):.1f} tokens), batch {a.batch}, "
        f"{a.threads} threads, best of {a.rounds}; torch {torch.__version__}, sentence-transformers "
        f"{__import__('sentence_transformers').__version__}\n"
    )
    print("| encoder | texts/s | Quiver / torch |")
    print("|---|---|---|")
    print(f"| quiver-embed | {q['texts_per_s']:.0f} | {q['texts_per_s'] / st_tps:.2f}x |")
    print(f"| sentence-transformers (torch CPU) | {st_tps:.0f} | 1.00x |")
    print(f"\ncosine(quiver, sentence-transformers): min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
