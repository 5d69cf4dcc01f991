"""Copies a model that passed the gate into out/models/<version>/ with its metrics."""
import os
import shutil
import sys

model, metrics = sys.argv[1], sys.argv[2]
version = "run-" + os.environ["SLUICE_RUN_ID"]
target = os.path.join("out", "models", "fashion-softmax", version)
os.makedirs(target, exist_ok=True)
shutil.copyfile(model, os.path.join(target, "model.npz"))
shutil.copyfile(metrics, os.path.join(target, "metrics.json"))
print(f"registered {target}")
with open(os.environ["SLUICE_OUTPUT"], "a") as f:
    f.write(f"path={target}\n")
