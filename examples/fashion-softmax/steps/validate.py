"""Checks the ingested arrays: counts, shapes, label range, class balance."""
import os
import sys

import numpy as np

from common import set_output, work_dir

w = work_dir()
load = lambda n: np.load(os.path.join(w, n + ".npy"))
train_x, train_y = load("train-images-idx3-ubyte"), load("train-labels-idx1-ubyte")
test_x, test_y = load("t10k-images-idx3-ubyte"), load("t10k-labels-idx1-ubyte")
problems = []
if train_x.shape != (60000, 28, 28) or test_x.shape != (10000, 28, 28):
    problems.append(f"image shapes {train_x.shape} / {test_x.shape}")
if len(train_y) != len(train_x) or len(test_y) != len(test_x):
    problems.append("label and image counts differ")
if train_y.max() > 9 or test_y.max() > 9:
    problems.append("labels outside 0..9")
counts = np.bincount(train_y, minlength=10)
if counts.min() < 0.8 * counts.mean():
    problems.append(f"unbalanced classes {counts.tolist()}")
if problems:
    sys.exit("validation failed: " + "; ".join(problems))
print(f"train {train_x.shape}, test {test_x.shape}, per-class counts {counts.tolist()}")
set_output("train_count", len(train_x))
set_output("test_count", len(test_x))
