"""An example consumer of nango-sync's change feed: the records table's DynamoDB stream.

Deployed by template.yaml when ChangeFeedExample is "true". It turns each stream record into one
change: {"change": added | updated | deleted | pruned | removed, "stream", "id", "record"}, where
"record" is the record as Nango sent it (None once removed). An application would re-index or
recompute here; this example logs the change without its record (never log payloads).

Writes that change nothing a reader cares about (a sweep stamping `seen_in` on a record it
re-read) are skipped: same `last_modified_at`, same deletion.

`python3 consumer.py < records.json` classifies a file of stream records (as GetRecords returns
them, {"Records": [...]}) and prints one JSON change per line: the tests run it that way.
"""
import base64
import gzip
import json
import sys

from boto3.dynamodb.types import TypeDeserializer

_deserialize = TypeDeserializer().deserialize


def record_of(image):
    """The record in an item image: `record` (a map) or `record_gz` (gzip of its JSON)."""
    if not image:
        return None
    if "record" in image:
        return _deserialize(image["record"])
    if "record_gz" in image:
        packed = image["record_gz"]["B"]
        if isinstance(packed, str):  # JSON carries binary as base64
            packed = base64.b64decode(packed)
        return json.loads(gzip.decompress(packed))
    return None


def _text(image, name):
    value = (image or {}).get(name)
    return value.get("S") if value else None


def change_of(stream_record):
    """One change, or None for a write that changed nothing a reader cares about."""
    event = stream_record["eventName"]
    data = stream_record["dynamodb"]
    old, new = data.get("OldImage"), data.get("NewImage")
    keys = data["Keys"]
    base = {"stream": keys["pk"]["S"], "id": keys["sk"]["S"]}
    if event == "REMOVE":
        return {"change": "removed", **base, "record": None}
    if event == "INSERT":
        kind = "deleted" if _text(new, "deleted_at") else "added"
        return {"change": kind, **base, "record": record_of(new)}
    if _text(new, "deleted_at") and not _text(old, "deleted_at"):
        kind = "deleted"
    elif _text(new, "pruned_at") and not _text(old, "pruned_at"):
        kind = "pruned"
    elif (_text(new, "last_modified_at") == _text(old, "last_modified_at")
          and _text(new, "deleted_at") == _text(old, "deleted_at")):
        return None
    else:
        kind = "updated"
    return {"change": kind, **base, "record": record_of(new)}


def handler(event, _context):
    """The Lambda entry point: a batch of stream records, in order per item."""
    for stream_record in event["Records"]:
        change = change_of(stream_record)
        if change:
            print(json.dumps({"change": change["change"], "stream": change["stream"], "id": change["id"]}))
    return {"batchItemFailures": []}


if __name__ == "__main__":
    for stream_record in json.load(sys.stdin)["Records"]:
        change = change_of(stream_record)
        if change:
            print(json.dumps(change, default=str))
