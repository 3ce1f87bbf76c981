"""Schemathesis hooks for control/tests/api_fuzz.rs.

Random `to` values name no workload, and the service answers those with 400
before its engine runs. Every generated simulation body that is an object
gets a `to` naming the seeded workload, so the engine judges the fuzzed
method, path, host, port, headers and caller.
"""

import schemathesis


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is not None and operation.path == "/v1/simulate" and isinstance(body, dict):
        body = dict(body)
        body["to"] = "shop/api-1"
    return body
