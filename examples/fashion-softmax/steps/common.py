"""Shared by the demo's steps: where this run's files live, and how a step
sets its outputs (key=value lines appended to $SLUICE_OUTPUT)."""
import os


def work_dir():
    path = os.path.join("out", "run-" + os.environ["SLUICE_RUN_ID"])
    os.makedirs(path, exist_ok=True)
    return path


def set_output(key, value):
    value = str(value)
    with open(os.environ["SLUICE_OUTPUT"], "a") as f:
        if "\n" in value:
            f.write(f"{key}<<SLUICE_EOF\n{value}\nSLUICE_EOF\n")
        else:
            f.write(f"{key}={value}\n")
