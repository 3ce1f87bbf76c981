"""The gRPC side of the end-to-end tests (tests/e2e/tests/grpc.rs).

    inventory.py serve STUBS PORT CALLS_LOG
        The Inventory service (inventory.proto) on 127.0.0.1:PORT, plaintext
        HTTP/2, with server reflection (v1alpha and v1). Every call it handles
        appends its full method name to CALLS_LOG. Prints READY when serving.

    inventory.py call STUBS PORT CA CERT KEY CALL...
        Calls through Envoy's mTLS listener on 127.0.0.1:PORT (server name
        localhost) with the client certificate CERT/KEY; CALL is a method of
        Inventory (GetItem, ListItems, DeleteItem) or reflection-v1alpha /
        reflection-v1 (list the services). Prints one JSON object per call:
        {"call", "code" (the gRPC status name), "details", "reply"}.

STUBS is the directory the test generated inventory_pb2*.py into.
"""

import json
import sys
from concurrent import futures

import grpc


def serve(port, calls_log):
    import inventory_pb2 as pb
    import inventory_pb2_grpc as pb_grpc
    from grpc_reflection.v1alpha import reflection
    from grpc_reflection.v1alpha import reflection_pb2

    def record(method):
        with open(calls_log, "a") as f:
            f.write(method + "\n")

    service = pb.DESCRIPTOR.services_by_name["Inventory"].full_name

    class Inventory(pb_grpc.InventoryServicer):
        def GetItem(self, request, context):
            record("/%s/GetItem" % service)
            return pb.Item(id=request.id, name="widget " + request.id)

        def ListItems(self, request, context):
            record("/%s/ListItems" % service)
            return pb.ListItemsReply(items=[pb.Item(id="1", name="widget 1")])

        def DeleteItem(self, request, context):
            record("/%s/DeleteItem" % service)
            return pb.Item(id=request.id, name="deleted")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_InventoryServicer_to_server(Inventory(), server)
    # Server reflection under both names: grpc.reflection.v1 has the same
    # messages as v1alpha, and servers that support both serve them alike.
    reflection_names = ["grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"]
    servicer = reflection.ReflectionServicer([service] + reflection_names)
    for name in reflection_names:

        def reflect(requests, context, name=name):
            record("/%s/ServerReflectionInfo" % name)
            yield from servicer.ServerReflectionInfo(requests, context)

        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    name,
                    {
                        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                            reflect,
                            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                        )
                    },
                ),
            )
        )
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


def call(port, ca, cert, key, calls):
    import inventory_pb2 as pb
    import inventory_pb2_grpc as pb_grpc
    from grpc_reflection.v1alpha import reflection_pb2

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel("127.0.0.1:%d" % port, creds, options) as channel:
        stub = pb_grpc.InventoryStub(channel)
        for name in calls:
            out = {"call": name, "code": "OK", "details": None, "reply": None}
            try:
                if name.startswith("reflection-"):
                    version = name.split("-", 1)[1]
                    rpc = channel.stream_stream(
                        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
                        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
                    )
                    replies = rpc(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
                    out["reply"] = [s.name for r in replies for s in r.list_services_response.service]
                elif name == "ListItems":
                    reply = stub.ListItems(pb.ListItemsRequest(), timeout=10)
                    out["reply"] = [i.name for i in reply.items]
                else:
                    reply = getattr(stub, name)(pb.GetItemRequest(id="7"), timeout=10)
                    out["reply"] = reply.name
            except grpc.RpcError as e:
                out["code"] = e.code().name
                out["details"] = e.details()
            print(json.dumps(out), flush=True)


def main():
    mode, stubs = sys.argv[1], sys.argv[2]
    sys.path.insert(0, stubs)
    if mode == "serve":
        serve(int(sys.argv[3]), sys.argv[4])
    elif mode == "call":
        port, ca, cert, key = sys.argv[3:7]
        call(int(port), ca, cert, key, sys.argv[7:])
    else:
        sys.exit("usage: inventory.py serve|call ...")


if __name__ == "__main__":
    main()
