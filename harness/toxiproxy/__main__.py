"""``python -m harness.toxiproxy [--host 127.0.0.1] [--port 8474] [--seed N]``.

Prints one line, ``toxiproxy API listening on http://HOST:PORT``, once the API
accepts requests (``--port 0`` picks a free port; the line says which), then
serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from harness.toxiproxy.server import ToxiproxyServer

__all__ = ["main"]


async def _serve(host: str, port: int, seed: int | None) -> None:
    server = ToxiproxyServer(host=host, port=port, seed=seed)
    await server.start()
    print(f"toxiproxy API listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.toxiproxy",
        description="A Toxiproxy 2.x compatible server (Python standard library only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474, help="API port (default 8474; 0 = any)")
    parser.add_argument("--seed", type=int, default=None, help="seed for toxicity, jitter, slicing")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port, args.seed))
    except OSError as exc:
        print(f"toxiproxy: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
