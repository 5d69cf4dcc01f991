"""Evaluates a model on the 10,000 test images: accuracy, per-class recall
and precision, and the confusion matrix, written as JSON."""
import json
import os
import sys

import numpy as np

from common import set_output, work_dir

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
w = work_dir()
m = np.load(sys.argv[1])
x = np.load(os.path.join(w, "t10k-images-idx3-ubyte.npy")).reshape(10000, -1).astype(np.float32) / 255.0
y = np.load(os.path.join(w, "t10k-labels-idx1-ubyte.npy"))
pred = (x @ m["weights"] + m["bias"]).argmax(axis=1)
confusion = np.zeros((10, 10), int)
np.add.at(confusion, (y, pred), 1)
accuracy = float((pred == y).mean())
metrics = {
    "accuracy": accuracy,
    "recall": {c: float(confusion[i, i] / confusion[i].sum()) for i, c in enumerate(CLASSES)},
    "precision": {c: float(confusion[i, i] / max(1, confusion[:, i].sum())) for i, c in enumerate(CLASSES)},
    "confusion": confusion.tolist(),
}
path = os.path.join(w, "metrics.json")
with open(path, "w") as f:
    json.dump(metrics, f, indent=2)
for c in CLASSES:
    print(f"{c:12s} recall {metrics['recall'][c]:.3f} precision {metrics['precision'][c]:.3f}")
print(f"test accuracy {accuracy:.4f}")
set_output("accuracy", f"{accuracy:.4f}")
set_output("metrics", path)
