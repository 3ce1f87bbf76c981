"""Schemathesis hooks for control/tests/api_fuzz.rs.

Random `to` values name no workload, and the service answers those with 400
before its engine runs. Every generated simulation body that is an object
gets a `to` naming the seeded workload, so the engine judges the fuzzed
method, path, host, port, headers and caller. Likewise every generated
replay line becomes a request log line of that workload, its method and
path taken from the fuzzed text, so that replay judges it.
"""

import json

import schemathesis


def log_line(text):
    words = text.split()
    method = words[0] if words else "GET"
    return "meshward.request " + json.dumps(
        {"method": method, "path": "/" + text, "workload": "api-1", "namespace": "shop", "verdict": "allow"}
    )


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is not None and operation.path == "/v1/simulate" and isinstance(body, dict):
        body = dict(body)
        body["to"] = "shop/api-1"
    if (
        operation is not None
        and operation.path.endswith("/replay")
        and isinstance(body, dict)
        and isinstance(body.get("lines"), list)
    ):
        body = dict(body)
        body["lines"] = [log_line(line) if isinstance(line, str) else line for line in body["lines"]]
    return body
