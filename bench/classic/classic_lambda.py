"""The classic tutorial's whole backend in one Python Lambda: the baseline of
scripts/bench, written for Items API.

It reproduces the design that the tutorial stack (Cognito -> API Gateway ->
one Lambda -> one DynamoDB table) ships with, faults included, because the
benchmarks measure the Items API against exactly that:

- GET scans the table once and returns that one page (a Scan page stops at
  1 MB, so larger tables are silently cut);
- POST parses the body with no error handling (invalid JSON raises, which
  API Gateway turns into a 502), accepts any size, and records nothing of the
  caller;
- both answer 200; any other method gets a plain-text 405.

Do not "fix" any of this: a faster or safer baseline would make every ratio
in docs/benchmarks.md wrong. The table name comes from TABLE_NAME and a
local endpoint from DYNAMODB_ENDPOINT (the tutorial hard-codes both).
"""

import decimal
import json
import os
import uuid

import boto3

_table = boto3.resource("dynamodb", endpoint_url=os.environ.get("DYNAMODB_ENDPOINT")).Table(
    os.environ.get("TABLE_NAME", "items")
)


def _to_json(value):
    # DynamoDB numbers come back as Decimal, which json cannot write.
    return json.dumps(value, default=lambda v: float(v) if isinstance(v, decimal.Decimal) else str(v))


def _json_response(body):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": _to_json(body)}


def lambda_handler(event, context):
    method = event.get("httpMethod", "")
    if method == "GET":
        return _json_response(_table.scan()["Items"])
    if method == "POST":
        fields = json.loads(event["body"])
        item = {
            "id": str(uuid.uuid4()),
            "name": fields.get("name", "Unnamed"),
            "timestamp": fields.get("timestamp", "N/A"),
        }
        _table.put_item(Item=item)
        return _json_response({"message": "Item stored", "item": item})
    return {"statusCode": 405, "body": "Method Not Allowed"}
