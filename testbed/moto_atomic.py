#!/usr/bin/env python3
"""moto's server, one request at a time.

DynamoDB applies a conditional write atomically. moto's backend checks the condition and then writes, without a
lock, and its server handles requests on threads: two concurrent conditional PutItems can both succeed (seen in
keeper's ten-deliveries test under load). keeper's guard relies on that atomicity, so its tests run moto with each
request applied whole before the next, as DynamoDB applies each item write.

Usage: moto_atomic.py -H HOST -p PORT
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class OneAtATime:
    """A WSGI wrapper that runs each request, body included, under one lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
