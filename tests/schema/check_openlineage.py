"""Every line of an OpenLineage JSON Lines file is a valid RunEvent under
the given OpenLineage JSON Schema (2-0-2), with formats checked."""
import json
import sys

import jsonschema

schema_path, events_path = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
bad = 0
count = 0
with open(events_path) as f:
    for n, line in enumerate(f, 1):
        count += 1
        for e in validator.iter_errors(json.loads(line)):
            print(f"{events_path}:{n}: {e.message}")
            bad += 1
print(f"{count} events, {bad} problems")
sys.exit(1 if bad or count == 0 else 0)
