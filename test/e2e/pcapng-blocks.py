#!/usr/bin/env python3
# pcapng-blocks.py FILE... — the blocks of pcapng files as JSON, for the
# end-to-end tests: the section header's options, every interface (IDB)
# with its options, the packets (EPB) per interface, and every interface
# statistics block (ISB) with its options, in file order. tshark 4.0 shows
# neither ISBs nor if_filter/if_os of its own; this reader follows the
# pcapng specification (SHB §4.1, IDB §4.2, EPB §4.3, ISB §4.6).
import json
import struct
import sys

SHB, IDB, EPB, ISB = 0x0A0D0D0A, 1, 6, 5
SHB_OPTS = {1: "comment", 2: "hardware", 3: "os", 4: "userappl"}
IDB_OPTS = {1: "comment", 2: "name", 3: "description", 9: "tsresol", 11: "filter", 12: "os"}
ISB_OPTS = {1: "comment", 2: "starttime", 3: "endtime", 4: "ifrecv", 5: "ifdrop",
            6: "filteraccept", 7: "osdrop", 8: "usrdeliv"}


def options(buf, e, names, kind):
    out = {}
    off = 0
    while off + 4 <= len(buf):
        code, length = struct.unpack_from(e + "HH", buf, off)
        off += 4
        if code == 0:
            break
        val = buf[off:off + length]
        off += (length + 3) & ~3
        name = names.get(code, str(code))
        if kind == "isb" and code in (2, 3):
            hi, lo = struct.unpack(e + "II", val)
            out[name] = hi << 32 | lo
        elif kind == "isb" and code >= 4:
            out[name] = struct.unpack(e + "Q", val)[0]
        elif kind == "idb" and code == 11:
            out[name] = {"kind": val[0], "text": val[1:].decode()}
        elif kind == "idb" and code == 9:
            out[name] = val[0]
        else:
            out[name] = val.decode()
    return out


def read(path):
    data = open(path, "rb").read()
    off, e = 0, "<"
    res = {"file": path, "shb": None, "idbs": [], "packets": [], "isbs": [], "order": []}
    while off < len(data):
        if len(data) - off < 12:
            raise SystemExit(f"{path}: {len(data) - off} bytes left at {off}: a torn block")
        btype = struct.unpack_from("<I", data, off)[0]
        if btype == SHB:
            e = "<" if struct.unpack_from("<I", data, off + 8)[0] == 0x1A2B3C4D else ">"
        btype, total = struct.unpack_from(e + "II", data, off)
        if total < 12 or total % 4 or off + total > len(data):
            raise SystemExit(f"{path}: bad block length {total} at {off}")
        trail = struct.unpack_from(e + "I", data, off + total - 4)[0]
        if trail != total:
            raise SystemExit(f"{path}: trailing length {trail} != {total} at {off}")
        body = data[off + 8:off + total - 4]
        if btype == SHB:
            res["shb"] = options(body[16:], e, SHB_OPTS, "shb")
            res["order"].append("shb")
        elif btype == IDB:
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
            idb = options(body[8:], e, IDB_OPTS, "idb")
            idb.update(linktype=linktype, snaplen=snaplen)
            res["idbs"].append(idb)
            res["packets"].append(0)
            res["order"].append("idb")
        elif btype == EPB:
            ifid = struct.unpack_from(e + "I", body, 0)[0]
            res["packets"][ifid] += 1
            res["order"].append("epb")
        elif btype == ISB:
            ifid, hi, lo = struct.unpack_from(e + "III", body, 0)
            isb = options(body[12:], e, ISB_OPTS, "isb")
            isb.update(ifid=ifid, ts=hi << 32 | lo)
            res["isbs"].append(isb)
            res["order"].append("isb")
        else:
            res["order"].append(str(btype))
        off += total
    return res


json.dump([read(p) for p in sys.argv[1:]], sys.stdout, indent=1)
print()
