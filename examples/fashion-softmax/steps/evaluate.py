"""Evaluates a model on the 10,000 test images: accuracy, per-class recall
and precision, and the confusion matrix, as a declared metrics output."""
import json
import sys

import numpy as np

from common import images_and_labels, output_path, set_output

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
m = np.load(sys.argv[1])
x, y = images_and_labels(sys.argv[2])
pred = (x @ m["weights"] + m["bias"]).argmax(axis=1)
confusion = np.zeros((10, 10), int)
np.add.at(confusion, (y, pred), 1)
accuracy = float((pred == y).mean())
metrics = {"accuracy": accuracy}
for i, c in enumerate(CLASSES):
    metrics[f"recall/{c}"] = float(confusion[i, i] / confusion[i].sum())
    metrics[f"precision/{c}"] = float(confusion[i, i] / max(1, confusion[:, i].sum()))
    print(f"{c:12s} recall {metrics[f'recall/{c}']:.3f} precision {metrics[f'precision/{c}']:.3f}")
with open(output_path("metrics"), "w") as f:
    json.dump(metrics, f, indent=2)
with open(output_path("metrics") + "-confusion.json", "w") as f:  # not declared: stays with the attempt
    json.dump(confusion.tolist(), f)
print(f"test accuracy {accuracy:.4f}")
set_output("accuracy", f"{accuracy:.4f}")
