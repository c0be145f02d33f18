#!/usr/bin/python3
"""The lab's gRPC client: through the greeter Service's ClusterIP, one channel (one HTTP/2
connection, many streams) makes SAY calls to SayHello and FAIL calls to Fail, then a second
channel makes SAY more. The server logs the truth. Run with Debian's Python (python3-grpcio).

usage: grpc_client.py TARGET SAY FAIL
"""
import sys

import grpc

TARGET, SAY, FAIL = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def calls(channel, say, fail):
    hello = channel.unary_unary("/demo.Greeter/SayHello")
    failing = channel.unary_unary("/demo.Greeter/Fail")
    for i in range(say):
        assert hello(f"lab-{i}".encode(), timeout=5).startswith(b"hello, ")
    for _ in range(fail):
        try:
            failing(b"nobody", timeout=5)
            raise SystemExit("grpc_client: Fail succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e


def main():
    for say, fail in ((SAY, FAIL), (SAY, 0)):
        with grpc.insecure_channel(TARGET) as channel:
            calls(channel, say, fail)


if __name__ == "__main__":
    main()
