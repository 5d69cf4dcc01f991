"""Shared by the demo's steps: reading the data plugins' dataset folders
(specs/dataset-format.md) and setting outputs ($SLUICE_OUTPUT lines)."""
import json
import os

import numpy as np

DTYPES = {"uint8": np.uint8, "int64": np.int64, "float64": np.float64}


def load_dataset(folder):
    """The numeric columns of a dataset folder, as arrays of shape [rows, *shape]."""
    with open(os.path.join(folder, "dataset.json")) as f:
        meta = json.load(f)
    columns = {}
    for c in meta["columns"]:
        if c["dtype"] in DTYPES:
            data = np.fromfile(os.path.join(folder, c["file"]), dtype=DTYPES[c["dtype"]])
            columns[c["name"]] = data.reshape([meta["rows"]] + c["shape"])
    return columns


def images_and_labels(folder):
    d = load_dataset(folder)
    return d["image"].reshape(len(d["image"]), -1).astype(np.float32) / 255.0, d["label"].astype(np.int64)


def set_output(key, value):
    with open(os.environ["SLUICE_OUTPUT"], "a") as f:
        f.write(f"{key}={value}\n")


def output_path(name):
    """Where a declared output is written: $SLUICE_OUTPUTS_DIR/<name>."""
    return os.path.join(os.environ["SLUICE_OUTPUTS_DIR"], name)
