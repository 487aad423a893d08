"""The shopper's side of tests/integration/test_shaped_link.py, run inside the network namespace.

    ip netns exec NS python shaped_client.py download HOST PORT BYTES   # a download, then a page on the same connection
    ip netns exec NS python shaped_client.py busy-uplink HOST PORT SINK_PORT SECONDS   # a page while an upload fills the uplink

Prints one JSON object: the page's tier and the features edge signed into its token.
Standard library only (it runs under ``ip netns exec``, with the venv's interpreter).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sys
import threading
import time

#: Safari on an iPhone: it sends no network client hints (no ECT, RTT, Downlink).
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def _page(conn: http.client.HTTPConnection) -> dict:
    conn.request("GET", "/", headers={"User-Agent": SAFARI, "Accept": "text/html"})
    response = conn.getresponse()
    response.read()
    token = response.getheader("edge-token") or ""
    body = token.partition(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) if body else {}
    return {"status": response.status, "tier": response.getheader("edge-tier"), "features": payload.get("x", {})}


def download_then_page(host: str, port: int, size: int) -> dict:
    """``size`` bytes of a download, read whole, then the home page on the same keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    started = time.monotonic()
    conn.request("GET", "/download/100.bin", headers={"User-Agent": SAFARI, "Range": f"bytes=0-{size - 1}"})
    response = conn.getresponse()
    got = len(response.read())
    elapsed = time.monotonic() - started
    result = _page(conn)
    conn.close()
    return {**result, "download_status": response.status, "download_bytes": got, "download_kbps": got * 8 / elapsed / 1000}


def page_on_a_busy_uplink(host: str, port: int, sink_port: int, seconds: float) -> dict:
    """A first page on a fresh connection while another connection of this phone uploads (cubic fills the queue)."""
    stop = threading.Event()
    upload = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    upload.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")  # a loss-based sender: it fills the queue
    upload.connect((host, sink_port))

    def pump() -> None:
        chunk = b"u" * 16384
        try:
            while not stop.is_set():
                upload.sendall(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    time.sleep(seconds)  # the uplink's queue fills
    conn = http.client.HTTPConnection(host, port, timeout=120)
    result = _page(conn)
    conn.close()
    stop.set()
    upload.close()
    return result


def main(argv: list[str]) -> None:
    mode, host, port = argv[0], argv[1], int(argv[2])
    if mode == "download":
        result = download_then_page(host, port, int(argv[3]))
    elif mode == "busy-uplink":
        result = page_on_a_busy_uplink(host, port, int(argv[3]), float(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
