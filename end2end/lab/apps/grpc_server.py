#!/usr/bin/python3
"""The lab's gRPC pod: demo.Greeter over h2c (grpcio, the C core's HTTP/2 and HPACK), with generic
handlers so no protoc is needed — requests and replies are raw bytes. SayHello answers OK; Fail
ends with NOT_FOUND and a message.

One JSON line per call is logged (ground truth): method, status code, peer address and port.
Run with Debian's Python (python3-grpcio).

usage: grpc_server.py LISTEN_IP PORT LOG
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

IP, PORT, LOG = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
LOCK = threading.Lock()


def log(context, method, code):
    _, ip, port = context.peer().rsplit(":", 2) if context.peer().startswith("ipv4:") else ("", "", "0")
    with LOCK:
        LOG.write(json.dumps({"ts": time.time(), "method": method, "code": code,
                              "peer_ip": ip, "peer_port": int(port)}) + "\n")


def say_hello(request, context):
    log(context, "SayHello", 0)
    return b"hello, " + request


def fail(request, context):
    log(context, "Fail", grpc.StatusCode.NOT_FOUND.value[0])
    context.abort(grpc.StatusCode.NOT_FOUND, "no such name")


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    }),))
    server.add_insecure_port(f"{IP}:{PORT}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
