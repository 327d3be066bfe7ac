"""Keeps docs/openapi.yaml and the server in step.

- Every documented operation exists, and no undocumented method does.
- Schemathesis generates requests from the spec (examples, coverage, fuzzing
  and stateful phases, bounded in time) and checks every response against it:
  no 5xx, documented status codes, headers and bodies.
"""

import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml

from conftest import SPEC

METHODS = {"get", "post", "put", "patch", "delete"}


def call(server, method, path, token=None, body=None):
    request = urllib.request.Request(server.base_url + path, method=method.upper(), data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def concrete(path: str) -> str:
    return path.replace("{id}", str(uuid.uuid4()))


def test_every_documented_operation_exists_and_nothing_else(server):
    spec = yaml.safe_load(SPEC.read_text())
    token = server.token()
    assert set(spec["paths"]) == {"/items", "/items/{id}", "/items/{id}/events"}
    for path, operations in spec["paths"].items():
        documented = {m for m in operations if m in METHODS}
        for method in METHODS:
            body = b'{"name":"contract"}' if method in ("post", "patch") else None
            status, payload = call(server, method, concrete(path), token, body)
            if method in documented:
                assert status != 405, f"{method.upper()} {path} is documented but not served"
                assert payload != b'{"message":"Not found"}', f"{method.upper()} {path} is not routed"
                assert str(status) in operations[method]["responses"], f"{method.upper()} {path}: {status}"
            else:
                assert status == 405, f"{method.upper()} {path} is served but not documented ({status})"


def test_documented_security_matches_the_gateway(server):
    spec = yaml.safe_load(SPEC.read_text())
    read_only, write_only = server.token("items/read"), server.token("items/write")
    for path, operations in spec["paths"].items():
        for method, operation in ((m, o) for m, o in operations.items() if m in METHODS):
            (scopes,) = [s["cognito"] for s in operation["security"]]
            body = b"{}" if method == "post" else None
            assert call(server, method, concrete(path), None, body)[0] == 401
            other = write_only if scopes == ["items/read"] else read_only
            assert call(server, method, concrete(path), other, body)[0] == 403, f"{method} {path}"


def test_schemathesis_finds_no_contract_violation(server):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis), "run", str(SPEC),
            "--url", server.base_url,
            "--header", f"Authorization: Bearer {server.token()}",
            "--checks", "all",
            # positive_data_acceptance: schema-valid but refused on purpose: an
            # arbitrary string is not a cursor the API issued (400), and a
            # reused Idempotency-Key with another body is a 422.
            # ensure_resource_availability: reads are eventually consistent (the
            # projector runs after the 201), so an immediate GET of a new item
            # may 404 for a moment, as in AWS.
            # use_after_free: GET /items/{id}/events answers after the item's
            # DELETE on purpose: the history is the audit trail.
            "--exclude-checks", "positive_data_acceptance,ensure_resource_availability,use_after_free",
            "--max-examples", "30",
            "--max-time", "45",
            # One worker: with two, CPython 3.11 can raise "AST constructor
            # recursion depth mismatch" inside schemathesis (parsing in threads).
            "--workers", "1",
            "--seed", "20261125",
        ],
        capture_output=True, text=True, timeout=300,
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
