"""A webhook receiver that checks rtwire's signed deliveries with the
`standardwebhooks` package (the Standard Webhooks reference library for
Python), and the check of what it recorded.

usage:
  python webhooks.py serve SECRET_FILE RESULTS
      Serves HTTP on 127.0.0.1 (a free port); prints "listening on PORT"
      once ready, serves until killed. Every POST is verified with
      standardwebhooks.webhooks.Webhook(secret).verify(body, headers),
      the secret read from SECRET_FILE at each request (so it may be
      written after the receiver starts); the same headers with a
      tampered body must fail to verify. One JSON line per request is
      appended to RESULTS. Answers 200 when the delivery verified, else
      400.
  python webhooks.py check RESULTS MANIFEST
      MANIFEST has one line per published message: "ID<TAB>BODY_FILE<TAB>
      CONTENT_TYPE". Exits non-zero unless each message was delivered,
      every delivery of it verified, its body equals BODY_FILE's bytes,
      its Content-Type is CONTENT_TYPE and its tampered copy was refused.
"""

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def tampered(body):
    """The body with one byte added: still UTF-8, so only the signature can
    refuse it."""
    return body + b"!"


def verify(secret, body, headers):
    """None if the delivery verifies, else why not."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
        return None
    except (WebhookVerificationError, ValueError) as e:
        return "%s: %s" % (type(e).__name__, e)


def serve(secret_file, results):
    lock = threading.Lock()
    out = open(results, "w", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                with open(secret_file, encoding="utf-8") as f:
                    secret = f.read().strip()
            except OSError as e:
                secret, error = None, "no secret yet: %s" % e
            if secret is not None:
                error = verify(secret, body, headers)
                tamper_error = verify(secret, tampered(body), headers)
            else:
                tamper_error = "not checked"
            record = {
                "id": headers.get("webhook-id"),
                "ok": error is None,
                "error": error,
                # The verifier can fail: a changed body must not verify.
                "tamper_rejected": tamper_error is not None
                and tamper_error.startswith("WebhookVerificationError"),
                "content_type": headers.get("content-type"),
                "channel": headers.get("rtwire-channel"),
                "body": base64.b64encode(body).decode("ascii"),
            }
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            status = 200 if error is None else 400
            answer = b"verified\n" if error is None else (error + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


def check(results, manifest):
    with open(results, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    failures = []
    with open(manifest, encoding="utf-8") as f:
        expected = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for message_id, body_file, content_type in expected:
        with open(body_file, "rb") as f:
            body = f.read()
        mine = [r for r in records if r["id"] == message_id]
        if not mine:
            failures.append("%s: not delivered" % message_id)
            continue
        for r in mine:
            got = base64.b64decode(r["body"])
            if not r["ok"]:
                failures.append("%s: did not verify: %s" % (message_id, r["error"]))
            if got != body:
                failures.append("%s: body %r, published %r" % (message_id, got, body))
            if r["content_type"] != content_type:
                failures.append(
                    "%s: Content-Type %r, expected %r" % (message_id, r["content_type"], content_type)
                )
            if not r["tamper_rejected"]:
                failures.append("%s: a tampered body verified too" % message_id)
    unexpected = [r["id"] for r in records if r["id"] not in {e[0] for e in expected}]
    if unexpected:
        failures.append("deliveries of unpublished ids: %s" % unexpected)
    if failures:
        sys.exit("standardwebhooks:\n  " + "\n  ".join(failures))
    print(
        "standardwebhooks: %d deliveries of %d messages verified, tampered copies refused"
        % (len(records), len(expected))
    )


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
