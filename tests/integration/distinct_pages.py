"""An upstream whose every URL is a different page: the dynamic demo storefront's home page
(CSRF tokens, nonces, cart, recently viewed, a timestamp: :mod:`edge.demo.dynamic`) served at
whatever path is asked, so each path is a new key in edge's rewrite cache.

    python tests/integration/distinct_pages.py --port 8098
"""

from __future__ import annotations

import argparse

import uvicorn

from edge.demo import build_storefront


def build_app():  # noqa: ANN201
    shop = build_storefront(dynamic=True)

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] == "http":
            scope = {**scope, "path": "/", "raw_path": b"/", "query_string": b""}
        await shop(scope, receive, send)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
