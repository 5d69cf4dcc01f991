"""The editors' JSON Schemas (specs/pipeline.schema.json, specs/service.schema.json)
accept every example pipeline and service and reject the mistakes an editor
should flag."""
import glob
import json
import os
import sys

import jsonschema
import yaml

root = sys.argv[1]
with open(os.path.join(root, "specs", "pipeline.schema.json")) as f:
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
failures = 0

with open(os.path.join(root, "specs", "service.schema.json")) as f:
    service_schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(service_schema)
service_validator = jsonschema.Draft202012Validator(service_schema)

for path in sorted(glob.glob(os.path.join(root, "examples", "*", "*.yaml"))):
    with open(path) as f:
        doc = yaml.safe_load(f)
    # A service document has `service:` at the top; everything else is a pipeline.
    errors = list((service_validator if isinstance(doc, dict) and "service" in doc else validator).iter_errors(doc))
    for e in errors:
        print(f"{path}: {e.message}")
    failures += bool(errors)
    print(f"accepted {os.path.relpath(path, root)}" if not errors else f"REJECTED {path}")

bad = {
    "unknown top-level key": {"name": "x", "stpes": {}},
    "missing steps": {"name": "x"},
    "bad name": {"name": "X", "steps": {"a": {"run": "true"}}},
    "step with neither run nor uses": {"name": "x", "steps": {"a": {"needs": []}}},
    "unknown step key": {"name": "x", "steps": {"a": {"run": "true", "need": ["b"]}}},
    "bad duration": {"name": "x", "steps": {"a": {"run": "true", "timeout": "10 minutes"}}},
    "param without a type": {"name": "x", "params": {"p": {"default": 1}}, "steps": {"a": {"run": "true"}}},
    "foreach that is not a list": {"name": "x", "steps": {"a": {"run": "true", "foreach": "abc"}}},
    "dep outside the spec's folder": {"name": "x", "steps": {"a": {"run": "true", "deps": ["../lib.py"]}}},
    "absolute dep": {"name": "x", "steps": {"a": {"run": "true", "deps": "/etc/hosts"}}},
    "cache map with an unknown key": {"name": "x", "steps": {"a": {"run": "true", "cache": {"maxage": "1d"}}}},
    "matrix key that is not a list": {"name": "x", "steps": {"a": {"run": "true", "foreach": {"matrix": {"lr": 0.1}}}}},
    "foreach map without a matrix": {"name": "x", "steps": {"a": {"run": "true", "foreach": {"exclude": [{"a": 1}]}}}},
    "misspelt include": {"name": "x", "steps": {"a": {"run": "true", "foreach": {"matrix": {"a": [1]}, "includes": []}}}},
    "max_parallel of zero": {"name": "x", "steps": {"a": {"run": "true", "foreach": [1], "max_parallel": 0}}},
    "a call with a step's key": {"name": "x", "templates": {"t": {"steps": {"a": {"run": "true"}}}},
                                 "steps": {"a": {"call": "t", "retry": 2}}},
    "a call with a foreach that is not a list": {"name": "x", "templates": {"t": {"steps": {"a": {"run": "true"}}}},
                                                 "steps": {"a": {"call": "t", "foreach": "abc"}}},
    "a call with max_parallel": {"name": "x", "templates": {"t": {"steps": {"a": {"run": "true"}}}},
                                 "steps": {"a": {"call": "t", "foreach": [1], "max_parallel": 1}}},
    "a call that also runs": {"name": "x", "templates": {"t": {"steps": {"a": {"run": "true"}}}},
                              "steps": {"a": {"call": "t", "run": "true"}}},
    "a template without steps": {"name": "x", "templates": {"t": {"params": {}}}, "steps": {"a": {"call": "t"}}},
    "a template file outside the spec's folder": {"name": "x", "templates": {"t": {"uses": "../t.yaml"}}, "steps": {"a": {"call": "t"}}},
    "a template output that is not one step output": {"name": "x", "templates": {"t": {"steps": {"a": {"run": "true"}},
                                                                                        "outputs": {"m": "model"}}},
                                                      "steps": {"a": {"call": "t"}}},
    "cache max_age that is not a duration": {"name": "x", "defaults": {"cache": {"max_age": "a week"}}, "steps": {"a": {"run": "true"}}},
    "run timeout that is not a duration": {"name": "x", "timeout": "2 hours", "steps": {"a": {"run": "true"}}},
    "empty finally": {"name": "x", "steps": {"a": {"run": "true"}}, "finally": {}},
    "finally step with neither run nor uses": {"name": "x", "steps": {"a": {"run": "true"}}, "finally": {"f": {"needs": []}}},
    "retry on an empty list": {"name": "x", "steps": {"a": {"run": "true", "retry": {"limit": 1, "on": []}}}},
    "retry on an exit status past 255": {"name": "x", "steps": {"a": {"run": "true", "retry": {"limit": 1, "on": [256]}}}},
    "retry on a map": {"name": "x", "steps": {"a": {"run": "true", "retry": {"limit": 1, "on": {"code": 1}}}}},
    "approval with an unknown key": {"name": "x", "steps": {"g": {"uses": "sluice/approval", "with": {"mesage": "ok?"}}}},
    "approval value without a type": {"name": "x", "steps": {"g": {"uses": "sluice/approval", "with": {"values": {"n": {"default": 1}}}}}},
    "approval on_timeout that is neither": {"name": "x", "steps": {"g": {"uses": "sluice/approval", "with": {"on_timeout": "skip"}}}},
    "run output with a bad name": {"name": "x", "steps": {"a": {"run": "true"}}, "outputs": {"9lives": "x"}},
    "run output that is a map": {"name": "x", "steps": {"a": {"run": "true"}}, "outputs": {"m": {"value": "x"}}},
    "a schedule overlap that is not allow, forbid or replace": {"name": "x", "on": {"schedule": [{"cron": "@daily", "overlap": "skip"}]},
                                                                "steps": {"a": {"run": "true"}}},
    "concurrency without a group": {"name": "x", "concurrency": {"cancel_in_progress": True}, "steps": {"a": {"run": "true"}}},
    "concurrency with an unknown key": {"name": "x", "concurrency": {"group": "g", "cancel": True}, "steps": {"a": {"run": "true"}}},
    "an empty concurrency group": {"name": "x", "concurrency": "", "steps": {"a": {"run": "true"}}},
    "cancel_in_progress that is not a bool": {"name": "x", "concurrency": {"group": "g", "cancel_in_progress": "yes"},
                                              "steps": {"a": {"run": "true"}}},
    "a pool name starting with a dash": {"name": "x", "steps": {"a": {"run": "true", "pool": "-gpu"}}},
    "a pool name of 65 characters": {"name": "x", "steps": {"a": {"run": "true", "pool": "p" * 65}}},
    "pool_slots of zero": {"name": "x", "steps": {"a": {"run": "true", "pool": "gpu", "pool_slots": 0}}},
    "pool_slots past 10000": {"name": "x", "steps": {"a": {"run": "true", "pool": "gpu", "pool_slots": 10001}}},
    "a service with an unknown ready check": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"ready": {"htp": "/"}}}, "b": {"run": "true", "needs": "db"}}},
    "a service whose http check is not a path": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"ready": {"http": "health"}}}, "b": {"run": "true", "needs": "db"}}},
    "a service with two ready checks": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"ready": {"tcp": True, "http": "/"}}}, "b": {"run": "true", "needs": "db"}}},
    "a service whose ready run is empty": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"ready": {"run": []}}}, "b": {"run": "true", "needs": "db"}}},
    "a service whose ready timeout is not a duration": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"timeout": "30 seconds"}}, "b": {"run": "true", "needs": "db"}}},
    "a service with an unknown key": {"name": "x", "steps": {
        "db": {"run": "true", "service": {"ready_timeout": "30s"}}, "b": {"run": "true", "needs": "db"}}},
    "a cached service": {"name": "x", "steps": {
        "db": {"run": "true", "service": True, "cache": True}, "b": {"run": "true", "needs": "db"}}},
    "a foreach service": {"name": "x", "steps": {
        "db": {"run": "true", "service": True, "foreach": [1, 2]}, "b": {"run": "true", "needs": "db"}}},
    "service given as a string": {"name": "x", "steps": {
        "db": {"run": "true", "service": "yes"}, "b": {"run": "true", "needs": "db"}}},
    "approval value named like its own output": {"name": "x", "steps": {"g": {"uses": "sluice/approval",
                                                  "with": {"values": {"approver": {"type": "string"}}}}}},
}
good = {
    "a matrix with include, exclude, fail_fast and max_parallel": {
        "name": "x", "params": {"lrs": {"type": "string", "default": "[0.1]"}},
        "steps": {"a": {"run": "echo ${{ item.lr }}", "fail_fast": True, "max_parallel": 2,
                        "foreach": {"matrix": {"lr": "${{ fromJSON(params.lrs) }}", "depth": [3, 5]},
                                    "include": [{"depth": 3, "extra": "x"}], "exclude": [{"depth": 5}]}},
                  "b": {"run": "true", "foreach": [{"lr": 0.1}, {"lr": 0.2}], "if": "item.lr > 0.1"}}},
    "deps and a cache map": {"name": "x", "defaults": {"cache": {"max_age": "7d"}},
                             "steps": {"a": {"run": "true", "deps": ["train.py", "data/*.csv", "src/**/*.py"], "cache": True},
                                       "b": {"run": "true", "deps": "model.pt", "cache": {"max_age": "1h30m"}}}},
    "a run timeout, conditional retries and finally steps": {
        "name": "x", "timeout": "2h",
        "defaults": {"retry": {"limit": 2, "on": "${{ attempt.timed_out }}"}},
        "steps": {"a": {"run": "true", "retry": {"limit": 3, "on": [137, 143]}},
                  "b": {"needs": "a", "run": "echo ${{ steps.a.exit_code }}"}},
        "finally": {"notify": {"run": "./notify.sh", "env": {"STATE": "${{ run.state }}"}},
                    "clean": {"needs": "notify", "run": "rm -rf tmp"}}},
    "templates and calls": {"name": "x",
                            "templates": {"t": {"params": {"lr": {"type": "float", "default": 0.1}},
                                                "steps": {"fit": {"run": "true", "outputs": {"m": "file"}}, "c": {"call": "f"}},
                                                "outputs": {"model": "${{ steps.fit.outputs.m }}"}},
                                          "f": {"uses": "./templates/f.yaml"}},
                            "steps": {"prep": {"run": "true"},
                                      "train": {"call": "t", "needs": "prep", "if": "params.go",
                                                "with": {"lr": "${{ params.lr }}"}},
                                      "report": {"needs": ["train"], "run": "echo ${{ steps.train.outputs.model }}"}}},
    "a foreach of a template": {"name": "x",
                                "templates": {"t": {"params": {"set": {"type": "string"}},
                                                    "steps": {"fit": {"run": "true"}, "eval": {"needs": "fit", "run": "true"}}}},
                                "steps": {"each": {"call": "t", "foreach": ["a", "b"], "with": {"set": "${{ item }}"}},
                                          "grid": {"call": "t", "foreach": {"matrix": {"lr": [1, 2]}}, "with": {"set": "${{ item.lr }}"}}}},
    "run outputs": {"name": "x", "steps": {"a": {"run": "true", "outputs": {"model": "model"}}},
                    "finally": {"f": {"run": "true"}},
                    "outputs": {"model": "${{ steps.a.outputs.model }}", "notified": "${{ steps.f.state }}", "n": 3}},
    "a concurrency group with cancel_in_progress, and pools": {
        "name": "x", "params": {"env": {"type": "string", "default": "prod"}},
        "concurrency": {"group": "deploy-${{ params.env }}", "cancel_in_progress": True},
        "steps": {"a": {"run": "true", "pool": "gpu", "pool_slots": 10000}, "b": {"run": "true", "pool": "p" * 64}}},
    "schedules with each overlap": {"name": "x", "on": {"schedule": [{"cron": "@daily", "overlap": "forbid"},
                                                                     {"cron": "@hourly", "overlap": "replace"},
                                                                     {"cron": "@weekly", "overlap": "allow"}]},
                                    "steps": {"a": {"run": "true"}}},
    "a concurrency group alone": {"name": "x", "concurrency": "nightly", "steps": {"a": {"run": "true"}}},
    "services with each ready check": {"name": "x", "steps": {
        "db": {"run": ["python3", "-m", "http.server", "${{ service.port }}"], "service": True},
        "web": {"run": "true", "service": {"ready": {"http": "/health?full=1"}, "timeout": "1h"}},
        "cache": {"run": "true", "service": {"ready": {"run": ["sh", "-c", "nc -z 127.0.0.1 $SLUICE_SERVICE_PORT"]}}},
        "api": {"run": "true", "service": {"ready": {"tcp": True}, "x-note": "mine"}},
        "load": {"needs": ["db", "web", "cache", "api"], "run": ["curl", "http://127.0.0.1:${{ steps.db.port }}/"]}}},
    "an approval with typed values": {"name": "x", "steps": {"g": {"uses": "sluice/approval", "with": {
        "message": "Deploy to prod?", "timeout": "24h", "on_timeout": "reject",
        "values": {"reason": {"type": "string"}, "replicas": {"type": "int", "default": 2, "min": 1}}}}}},
}
for what, spec in good.items():
    errors = list(validator.iter_errors(spec))
    for e in errors:
        print(f"{what}: {e.message}")
    failures += bool(errors)
    print(f"accepted {what}" if not errors else f"REJECTED {what}")
for what, spec in bad.items():
    if validator.is_valid(spec):
        print(f"NOT REJECTED: {what}")
        failures += 1
    else:
        print(f"rejected {what}")
service_good = {
    "the README's service": {"service": "fashion", "versions": {"blue": {"model": "fashion@1", "replicas": 2},
                                                                "green": {"model": "fashion@2"}},
                             "traffic": {"blue": 90, "green": 10}, "sticky": {"header": "x-user-id"},
                             "mirror": {"version": "green", "percent": 100}},
    "a command version": {"service": "mine", "versions": {"a": {"command": ["python3", "srv.py"], "port_env": "PORT",
                                                                "env": {"MODE": "fast"}, "workdir": "."}},
                          "timeout": "500ms", "max_inflight": 8, "stats": {"sample": 0.25}},
    "weights with two decimals": {"service": "x", "versions": {"a": {"model": "m@1"}, "b": {"model": "m@2"}},
                                  "traffic": {"a": 33.33, "b": 66.67}},
    "an infer token and a cache at their limits": {"service": "x", "versions": {"a": {"model": "m@1"}},
                                                   "auth": {"token_env": "FASHION_TOKEN"},
                                                   "cache": {"entries": 1000000, "ttl": "1d"}},
    "a cache of one entry": {"service": "x", "versions": {"a": {"model": "m@1"}}, "cache": {"entries": 1, "ttl": "1s"}},
}
service_bad = {
    "a misspelt key": {"service": "x", "versions": {"a": {"model": "m@1"}}, "mirorr": {}},
    "a bad service name": {"service": "Fashion!", "versions": {"a": {"model": "m@1"}}},
    "model and command": {"service": "x", "versions": {"a": {"model": "m@1", "command": ["srv"]}}},
    "neither model nor command": {"service": "x", "versions": {"a": {"replicas": 1}}},
    "a weight over 100": {"service": "x", "versions": {"a": {"model": "m@1"}}, "traffic": {"a": 100.5}},
    "17 replicas": {"service": "x", "versions": {"a": {"model": "m@1", "replicas": 17}}},
    "threads on a command": {"service": "x", "versions": {"a": {"command": ["srv"], "threads": 2}}},
    "sticky by header and field": {"service": "x", "versions": {"a": {"model": "m@1"}},
                                   "sticky": {"header": "x-user", "field": "a.b"}},
    "auth without token_env": {"service": "x", "versions": {"a": {"model": "m@1"}}, "auth": {}},
    "the token itself in auth": {"service": "x", "versions": {"a": {"model": "m@1"}}, "auth": {"token": "s3cret"}},
    "a token_env that is no variable name": {"service": "x", "versions": {"a": {"model": "m@1"}},
                                             "auth": {"token_env": "9LIVES"}},
    "a cache of 0 entries": {"service": "x", "versions": {"a": {"model": "m@1"}}, "cache": {"entries": 0}},
    "a cache of 1000001 entries": {"service": "x", "versions": {"a": {"model": "m@1"}}, "cache": {"entries": 1000001}},
    "a cache ttl without a unit": {"service": "x", "versions": {"a": {"model": "m@1"}}, "cache": {"ttl": "60"}},
    "a stats sample over 1": {"service": "x", "versions": {"a": {"model": "m@1"}}, "stats": {"sample": 1.5}},
    "a misspelt stats key": {"service": "x", "versions": {"a": {"model": "m@1"}}, "stats": {"samples": 1}},
}
for what, doc in service_good.items():
    errors = list(service_validator.iter_errors(doc))
    for e in errors:
        print(f"{what}: {e.message}")
    failures += bool(errors)
    print(f"accepted service: {what}" if not errors else f"REJECTED service: {what}")
for what, doc in service_bad.items():
    if service_validator.is_valid(doc):
        print(f"NOT REJECTED service: {what}")
        failures += 1
    else:
        print(f"rejected service: {what}")

# The HTTP API's OpenAPI document parses and names every route the server has.
with open(os.path.join(root, "specs", "api.yaml")) as f:
    api = yaml.safe_load(f)
routes = ["/api/health", "/api/session", "/api/pipelines", "/api/pipelines/{name}", "/api/pipelines/{name}/runs",
          "/api/validate", "/api/runs", "/api/runs/{id}", "/api/runs/{id}/cancel", "/api/runs/{id}/retry",
          "/api/runs/{id}/attempts", "/api/runs/{id}/log", "/api/runs/{id}/steps/{step}/log", "/api/events",
          "/api/artifacts/{hash}", "/hooks/{pipeline}", "/api/services", "/api/services/{service}",
          "/api/services/{service}/history", "/api/services/{service}/windows", "/api/services/{service}/traffic"]
if not str(api.get("openapi", "")).startswith("3."):
    print("specs/api.yaml is not OpenAPI 3")
    failures += 1
for r in routes:
    if r not in api["paths"]:
        print(f"specs/api.yaml does not document {r}")
        failures += 1
print(f"specs/api.yaml documents {len(api['paths'])} routes")
sys.exit(1 if failures else 0)
