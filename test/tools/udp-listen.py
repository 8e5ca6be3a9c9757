#!/usr/bin/env python3
"""udp-listen — receives datagrams on 127.0.0.1:PORT into OUT (their bytes,
in order) and their sizes into OUT.sizes, one a line, until QUIET seconds
pass without one after the first, or LIMIT seconds in all. A large receive
buffer, so that a burst is not lost before this reads it.

    udp-listen.py PORT OUT QUIET LIMIT
"""
import socket
import sys
import time

port, out, quiet, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else what rmem_max allows
    try:
        s.setsockopt(socket.SOL_SOCKET, opt, 32 << 20)
        break
    except OSError:
        pass
s.bind(("127.0.0.1", port))
open(out + ".ready", "w").close()
end = time.monotonic() + limit
got = False
with open(out, "wb") as f, open(out + ".sizes", "w") as sizes:
    while time.monotonic() < end:
        s.settimeout(quiet if got else max(0.01, end - time.monotonic()))
        try:
            d = s.recv(70000)
        except socket.timeout:
            if got:
                break
            continue
        got = True
        f.write(d)
        f.flush()
        sizes.write("%d\n" % len(d))
