"""Trains a softmax-regression classifier with mini-batch SGD."""
import argparse
import time

import numpy as np

from common import images_and_labels, output_path, set_output

p = argparse.ArgumentParser()
p.add_argument("train")
p.add_argument("validation")
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--batch-size", type=int, required=True)
p.add_argument("--seed", type=int, required=True)
a = p.parse_args()
x, y = images_and_labels(a.train)
vx, vy = images_and_labels(a.validation)
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
print(f"{a.epochs * len(x) / (time.time() - start):.0f} samples/s")
with open(output_path("model"), "wb") as f:
    np.savez(f, weights=weights, bias=bias)
set_output("val_accuracy", f"{val_acc:.4f}")
