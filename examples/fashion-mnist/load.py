#!/usr/bin/env python3
"""Sends Fashion-MNIST test images to a service of the store's gateway while a
rollout of it is in progress, so a canary's analysis has requests to judge.

    python3 load.py --service fashion [--min-seconds 5] [--max-seconds 120]

It finds the gateway in $SLUICE_HOME/sluice.db (read only), waits until the
service answers, then sends one request after another until the service has
no rollout in progress (and at least --min-seconds passed) or --max-seconds
pass. It prints how many answers came from each version.
"""
import argparse
import collections
import gzip
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request

DATA = "/usr/share/datasets/fashion-mnist"


def store():
    home = os.environ.get("SLUICE_HOME", ".sluice")
    return sqlite3.connect(f"file:{home}/sluice.db?mode=ro", uri=True, timeout=10)


def gateway_url(db):
    row = db.execute("SELECT listen, port FROM gateway").fetchone()
    return f"http://{row[0]}:{row[1]}" if row and row[1] else None


def rollout_active(db, service):
    row = db.execute("SELECT count(*) FROM rollouts WHERE service = ? AND state IN ('progressing', 'paused')",
                     (service,)).fetchone()
    return row[0] > 0


def images(count=200):
    with gzip.open(f"{DATA}/t10k-images-idx3-ubyte.gz", "rb") as f:
        f.read(16)
        raw = f.read(count * 784)
    return [[b / 255.0 for b in raw[i * 784:(i + 1) * 784]] for i in range(count)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--service", required=True)
    p.add_argument("--min-seconds", type=float, default=5)
    p.add_argument("--max-seconds", type=float, default=120)
    a = p.parse_args()
    start = time.monotonic()
    db = store()
    url = None
    while time.monotonic() - start < a.max_seconds:
        try:
            url = gateway_url(db)
            if url:
                with urllib.request.urlopen(f"{url}/v2/models/{a.service}/ready", timeout=5):
                    break
        except (urllib.error.URLError, ConnectionError, sqlite3.Error):
            pass
        time.sleep(0.2)
    if not url:
        sys.exit("no gateway answered for service " + a.service)
    pictures = images()
    answers = collections.Counter()
    errors = collections.Counter()
    i = 0
    next_check = 0
    while True:
        now = time.monotonic() - start
        if now > a.max_seconds:
            break
        if now >= a.min_seconds and now >= next_check:
            next_check = now + 1
            if not rollout_active(db, a.service):
                break
        body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                                       "data": pictures[i % len(pictures)]}]}).encode()
        i += 1
        req = urllib.request.Request(f"{url}/v2/models/{a.service}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                answers[r.headers.get("x-sluice-version", "?")] += 1
        except urllib.error.HTTPError as e:
            errors[f"{e.code} from {e.headers.get('x-sluice-version', '?')}"] += 1
        except (urllib.error.URLError, ConnectionError) as e:
            errors[str(e)] += 1
    print(f"sent {i} requests in {time.monotonic() - start:.1f} s: answers by version {dict(answers)}, "
          f"errors {dict(errors)}")


if __name__ == "__main__":
    main()
