"""What reading the server-side round trip costs per request: one getsockopt(TCP_INFO) plus the parse.

    .venv/bin/python loadtests/tcp_info_cost.py [--n 200000]

In-process, on a real loopback TCP connection that has carried data (so every field is set), timed with
``timeit`` (best of 5 runs of N calls each): the bare syscall, the parse of its bytes, and
``edge.pipeline.client_rtt.read_tcp_info`` (both, what edge's protocol calls once per request).
"""

from __future__ import annotations

import argparse
import socket
import timeit

from edge.pipeline.client_rtt import TCP_INFO_SIZE, parse_tcp_info, read_tcp_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="calls per run")
    n = parser.parse_args().n
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"x" * 1_000_000)
            got = 0
            while got < 1_000_000:
                got += len(client.recv(65536))
            raw = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
            cases = {
                "getsockopt(TCP_INFO)": lambda: conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE),
                "parse_tcp_info": lambda: parse_tcp_info(raw),
                "read_tcp_info (both)": lambda: read_tcp_info(conn),
                "empty call (floor)": lambda: None,
            }
            print(f"{len(raw)} bytes of struct tcp_info; {read_tcp_info(conn)}")
            for name, call in cases.items():
                best = min(timeit.repeat(call, number=n, repeat=5)) / n
                print(f"{name:24s} {best * 1e9:8.0f} ns/call")
    uvloop_case(n)


def uvloop_case(n: int) -> None:
    """The same read through uvloop's transport socket (what edge's protocol holds under ``edge serve``)."""
    import asyncio

    import uvloop

    async def run() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future = loop.create_future()

        class Keep(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

        server = await loop.create_server(Keep, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = await made
        sock = transport.get_extra_info("socket")
        best = min(timeit.repeat(lambda: read_tcp_info(sock), number=n, repeat=5)) / n
        print(f"{'read_tcp_info (uvloop)':24s} {best * 1e9:8.0f} ns/call   ({type(sock).__name__})")
        writer.close()
        transport.close()
        server.close()

    uvloop.run(run())


if __name__ == "__main__":
    main()
