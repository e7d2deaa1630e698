"""A dev server on a reserved port: the zero-gap handoff in a dozen lines.

Run it with ``python examples/serve.py [DIRECTORY]``; stop it with Ctrl-C.
"""

from __future__ import annotations

import functools
import http.server
import sys

import localport


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    with localport.reserve(name="examples-serve") as reservation:
        # The server takes the already bound, listening socket: nothing can slip in between.
        server = http.server.ThreadingHTTPServer(
            reservation.address, handler, bind_and_activate=False
        )
        server.socket.close()
        server.socket = reservation.listen()
        with server:
            print(f"serving {directory} at {reservation.url()} (Ctrl-C to stop)", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
