"""A tiny HTTP service: answers GET / with its greeting and GET /healthz with ok."""

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def make_handler(config):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                body = b"ok\n"
                kind = "text/plain"
            else:
                body = json.dumps(
                    {"greeting": config["greeting"], "environment": config["environment"]}
                ).encode()
                kind = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="/etc/app/app.json")
    args = parser.parse_args()
    config = load(args.config)
    server = ThreadingHTTPServer(("0.0.0.0", int(config["port"])), make_handler(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on port %s" % config["port"], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
