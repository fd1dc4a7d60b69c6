"""A Python `websockets` echo server over TLS, for rtwire's wss:// client.
Prints "listening on PORT" once ready, serves until killed; echoes every
message and answers request headers back as a text message on demand
(a message "headers?" gets the request's headers as "name: value" lines).

usage: python ws_server.py CERT_PEM KEY_PEM
"""

import ssl
import sys

from websockets.sync.server import serve


def handler(ws):
    for message in ws:
        if message == "headers?":
            ws.send("\n".join("%s: %s" % kv for kv in ws.request.headers.raw_items()))
        else:
            ws.send(message)


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serve(handler, "127.0.0.1", 0, ssl=context, max_size=2 << 20) as server:
        print("listening on %d" % server.socket.getsockname()[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
