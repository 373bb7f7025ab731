"""Search latency and recall: exact (FAISS IndexFlatIP) vs HNSW (IndexHNSWFlat), one run.

Synthetic galleries of 10k, 100k and 1M L2-normalized vectors of the default recipe's width
(128), drawn around 2,000 cluster centres (real embeddings cluster by content; uniform random
vectors in 128-d are the worst case for any graph index). Queries are gallery vectors plus
noise, so each has true neighbours. For each size: build time, single-query latency (median,
min and max over the queries, exact and HNSW interleaved query by query) and HNSW's recall@10
against exact search.

    python benchmarks/search_index.py [--sizes 10000 100000 1000000] [--queries 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from trimodal.serve.gallery import HNSW_SEARCH_DEPTH, new_index


def clustered(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` normalized vectors around 2,000 normalized centres."""
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, len(centres), count)]
    vectors = (
        vectors + 0.35 * rng.standard_normal((count, dim)).astype(np.float32) / np.sqrt(dim) * 4
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ms (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(
        f"dim {args.dim}, {args.queries} queries, {args.threads} threads, HNSW M=32 efSearch={HNSW_SEARCH_DEPTH}"
    )
    print(
        "| vectors | build exact | build HNSW | exact query | HNSW query | exact / HNSW | recall@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        gallery = clustered(size, args.dim, rng)
        picks = rng.integers(0, size, args.queries)
        queries = (
            gallery[picks]
            + 0.05
            * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
            / np.sqrt(args.dim)
            * 4
        )
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        start = time.perf_counter()
        exact = new_index(gallery, exact_limit=size)
        exact_build = time.perf_counter() - start
        start = time.perf_counter()
        hnsw = new_index(gallery, exact_limit=0)
        hnsw_build = time.perf_counter() - start
        exact_ms, hnsw_ms, recalls = [], [], []
        for query in queries:
            row = query.reshape(1, -1)
            start = time.perf_counter()
            _, truth = exact.search(row, 10)
            exact_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            _, found = hnsw.search(row, 10)
            hnsw_ms.append((time.perf_counter() - start) * 1000)
            recalls.append(len(set(truth[0]) & set(found[0])) / 10)
        ratio = statistics.median(exact_ms) / statistics.median(hnsw_ms)
        print(
            f"| {size:,} | {exact_build:.2f} s | {hnsw_build:.1f} s | {summary(exact_ms)} | "
            f"{summary(hnsw_ms)} | {ratio:.1f}x | {np.mean(recalls):.3f} |",
            flush=True,
        )
        del exact, hnsw, gallery


if __name__ == "__main__":
    main()
