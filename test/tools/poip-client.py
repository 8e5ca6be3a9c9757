#!/usr/bin/env python3
"""poip-client — a PCAP-over-IP client for the tests: connects to HOST:PORT
and copies what it receives to OUT until the server closes the connection
(or it is killed), as `nc HOST PORT > OUT` would (Debian's netcat is not
installed everywhere).

  poip-client.py HOST:PORT OUT [--stall]

--stall: a client that does not read: a receive buffer of 4 KiB, set before
it connects so that the window stays small; it sleeps until SIGUSR1, then
reads what the connection still holds into OUT, and exits 0 when the server
had closed it (the end came within 5 s), 1 when it was still open.
"""
import signal
import socket
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    hostport, out = sys.argv[1], sys.argv[2]
    stall = "--stall" in sys.argv[3:]
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    go = []
    signal.signal(signal.SIGUSR1, lambda *_: go.append(1))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if stall:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    if stall:
        while not go:
            time.sleep(0.05)
        s.settimeout(5)
        with open(out, "wb") as f:
            try:
                while True:
                    d = s.recv(1 << 16)
                    if not d:
                        return 0
                    f.write(d)
            except (socket.timeout, ConnectionResetError):
                return 1
    with open(out, "wb") as f:
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            f.write(d)
            f.flush()


if __name__ == "__main__":
    sys.exit(main())
