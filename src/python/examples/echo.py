#!/usr/bin/env python3
"""echo.py: a cohort service in Python. Serves SERVICE (default "echo") on
the node, answering each request with its own payload and headers, and
prints one line per request. Stops on Ctrl-C / SIGTERM (saying Bye) or when
the node goes away (exit code 1).

    python3 src/python/examples/echo.py --api ipc:///var/lib/cohort/api.sock
    python3 src/python/examples/echo.py -c /etc/cohort/node.yaml --service echo.py
    cohortctl req echo "hello"        # from any node of the cluster
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import cohort  # noqa: E402  (after the path set-up)


def main():
    ap = argparse.ArgumentParser(description="serve an echo service on a cohort node")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--api", help="the node's api.endpoint (default: $COHORT_API)")
    where.add_argument("-c", "--config", help="the node's node.yaml (its api.endpoint)")
    ap.add_argument("--service", default="echo")
    ap.add_argument("--count", type=int, default=None, help="stop after this many requests")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds into close(): Bye

    def echo(req):
        print("%s %s: %s" % (req.subject, req.sender, req.text), flush=True)
        return req.payload, req.headers

    try:
        with cohort.Client(args.api, config=args.config) as c:
            print("serving '%s' on the node at %s" % (args.service, c.endpoint), flush=True)
            c.serve(args.service, echo, count=args.count)
    except KeyboardInterrupt:
        return 0
    except (cohort.CohortError, ValueError) as e:
        print("echo.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
