"""TLS checks with kazoo (use_ssl=True). Exit 0 when the check holds.

  roundtrip PATH           create, get with a watch, set, see the event, get the new data, delete
  read PATH ok|noauth      get PATH succeeds, or fails with NoAuthError
  no-connect               the session is never established (within 8 s)
"""
import argparse
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.retry import KazooRetry


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("check")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    client = KazooClient(hosts=a.hosts, use_ssl=True, ca=a.ca, certfile=a.cert, keyfile=a.key, verify_certs=True,
                         timeout=10, connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=1))
    if a.check == "no-connect":
        try:
            client.start(timeout=8)
        except Exception as e:  # kazoo's timeout: the session never came up
            print("OK no-connect (%s)" % type(e).__name__)
            client.stop()
            return 0
        print("FAIL a session was established")
        client.stop()
        return 1
    client.start(timeout=20)
    try:
        if a.check == "roundtrip":
            path = a.args[0]
            changed = threading.Event()
            client.create(path, b"one")
            data, _ = client.get(path, watch=lambda e: changed.set() if e.type == "CHANGED" and e.path == path else None)
            assert data == b"one", data
            client.set(path, b"two")
            assert changed.wait(10), "no CHANGED event"
            assert client.get(path)[0] == b"two"
            client.delete(path)
        elif a.check == "read":
            path, expect = a.args
            try:
                data, _ = client.get(path)
                if expect != "ok":
                    print("FAIL read succeeded: %r" % data)
                    return 1
            except NoAuthError:
                if expect == "ok":
                    print("FAIL NoAuth")
                    return 1
        else:
            print("FAIL unknown check " + a.check)
            return 1
        print("OK " + a.check)
        return 0
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    sys.exit(main())
