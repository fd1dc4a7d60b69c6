"""A Python `websockets` client against an rtwire server over wss://:
echoes a 1 MiB binary message and a text one, trusting only the test CA.

usage: python ws_client.py URL CA_PEM
"""

import os
import ssl
import sys

from websockets.sync.client import connect


def main():
    url, ca = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=ca)
    big = os.urandom(1 << 20)
    with connect(url, ssl=context, max_size=2 << 20, open_timeout=10) as ws:
        ws.send(big)
        echoed = ws.recv(timeout=30)
        if echoed != big:
            sys.exit("the 1 MiB echo differs (%d bytes back)" % len(echoed))
        ws.send("héllo over TLS")
        if ws.recv(timeout=10) != "héllo over TLS":
            sys.exit("the text echo differs")
    print("python websockets client: 1 MiB and text echoed over wss")


if __name__ == "__main__":
    main()
