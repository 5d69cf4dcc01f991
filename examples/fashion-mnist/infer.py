#!/usr/bin/env python3
"""Sends Fashion-MNIST test images to a model server (Open Inference Protocol v2)
and prints what it answered next to the true labels.

    python3 examples/fashion-mnist/infer.py http://127.0.0.1:8081 fashion [count]
"""
import gzip
import json
import sys
import time
import urllib.error
import urllib.request

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path, count, header, item):
    with gzip.open(path, "rb") as f:
        f.read(header)
        return f.read(count * item)


def wait_ready(url, model, seconds=60):
    """A gateway just started may still be loading the model's replicas."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/models/{model}/ready", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                sys.exit(f"{url}/v2/models/{model} is not ready after {seconds} s")
            time.sleep(0.1)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    url, model = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    wait_ready(url, model)
    pixels = read_idx(f"{DATA}/t10k-images-idx3-ubyte.gz", count, 16, 784)
    labels = read_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz", count, 8, 1)
    body = {"inputs": [{"name": "input", "shape": [count, 1, 28, 28], "datatype": "FP32",
                        "data": [p / 255.0 for p in pixels]}]}
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    outputs = {o["name"]: o for o in answer["outputs"]}
    right = 0
    for i in range(count):
        label = outputs["label"]["data"][i]
        p = outputs["probabilities"]["data"][i * 10 + label]
        right += label == labels[i]
        print(f"image {i}: {outputs['class']['data'][i]:<12} p={p:.3f}  true class {labels[i]}"
              f"{'' if label == labels[i] else '  (wrong)'}")
    print(f"{right}/{count} right")


if __name__ == "__main__":
    main()
