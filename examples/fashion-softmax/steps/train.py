"""Trains a softmax-regression classifier with mini-batch SGD."""
import argparse
import os
import time

import numpy as np

from common import set_output, work_dir

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--batch-size", type=int, required=True)
p.add_argument("--seed", type=int, required=True)
a = p.parse_args()
w = work_dir()
d = np.load(os.path.join(w, "split.npz"))
prep = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
x, y, vx, vy = prep(d["train_x"]), d["train_y"], prep(d["val_x"]), d["val_y"]
rng = np.random.default_rng(a.seed)
weights = np.zeros((784, 10), np.float32)
bias = np.zeros(10, np.float32)
onehot = np.eye(10, dtype=np.float32)
start = time.time()
for epoch in range(1, a.epochs + 1):
    order = rng.permutation(len(x))
    loss = 0.0
    for i in range(0, len(x), a.batch_size):
        idx = order[i : i + a.batch_size]
        logits = x[idx] @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss -= np.log(probs[np.arange(len(idx)), y[idx]] + 1e-9).sum()
        grad = (probs - onehot[y[idx]]) / len(idx)
        weights -= a.lr * x[idx].T @ grad
        bias -= a.lr * grad.sum(axis=0)
    val_acc = float(((vx @ weights + bias).argmax(axis=1) == vy).mean())
    print(f"epoch {epoch}/{a.epochs}: loss {loss / len(x):.4f}, validation accuracy {val_acc:.4f}", flush=True)
elapsed = time.time() - start
model = os.path.join(w, "model.npz")
np.savez(model, weights=weights, bias=bias)
print(f"{a.epochs * len(x) / elapsed:.0f} samples/s")
set_output("model", model)
set_output("val_accuracy", f"{val_acc:.4f}")
