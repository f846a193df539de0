#!/usr/bin/env bash
# Seeds the cargo-fuzz corpus (fuzz/corpus/<target>/) from events/ and the signature vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/webhook fuzz/corpus/record
python3 - <<'PY'
import glob, json, hashlib, os
def put(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join("fuzz/corpus", target, name), "wb") as f:
        f.write(data)
for path in sorted(glob.glob("events/webhook-*.json")):
    put("webhook", json.load(open(path))["body"].encode())
for v in json.load(open("tests/fixtures/nango-signature-vectors.json"))["vectors"]:
    put("webhook", v["body"].encode())
meta = {"first_seen_at": "2026-01-15T10:00:00.123456+00:00", "last_modified_at": "2026-01-15T10:00:00.123456+00:00",
        "last_action": "ADDED", "deleted_at": None, "pruned_at": None, "cursor": "MjAy"}
for rec in [{"id": "contact-1", "name": "Alice", "_nango_metadata": meta},
            {"id": "1", "n": 1.5, "big": 18446744073709551615, "f": 1e-7, "_nango_metadata": meta}]:
    put("record", json.dumps(rec).encode())
PY
echo "corpus: $(ls fuzz/corpus/webhook | wc -l) webhook inputs, $(ls fuzz/corpus/record | wc -l) record inputs"
