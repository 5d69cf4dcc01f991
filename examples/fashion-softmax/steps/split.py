"""Holds out a validation set from the training images, reproducibly."""
import argparse
import os

import numpy as np

from common import set_output, work_dir

p = argparse.ArgumentParser()
p.add_argument("--validation", type=int, required=True)
p.add_argument("--seed", type=int, required=True)
a = p.parse_args()
w = work_dir()
x = np.load(os.path.join(w, "train-images-idx3-ubyte.npy"))
y = np.load(os.path.join(w, "train-labels-idx1-ubyte.npy"))
order = np.random.default_rng(a.seed).permutation(len(x))
val, train = order[: a.validation], order[a.validation :]
np.savez(os.path.join(w, "split.npz"), train_x=x[train], train_y=y[train], val_x=x[val], val_y=y[val])
print(f"train {len(train)}, validation {len(val)}")
set_output("train", len(train))
set_output("validation", len(val))
