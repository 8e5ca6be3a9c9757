#!/usr/bin/env bash
# The systemd units of deploy/systemd as `cmake --install` puts them under
# a prefix: ExecStart= names the programs installed beside them,
# `systemd-analyze verify` has nothing to say about them, the capture
# agent's capability set is exactly CAP_NET_RAW and the relay and the
# collector hold none, each service is sandboxed (`systemd-analyze security
# --offline`), the sysusers.d entry makes the collector's user, and every
# setting the units and the example environment files name is one of their
# program's settings (its --help).
. "$(dirname "$0")/lib.sh"
need systemd-analyze python3

prefix=$WORK/prefix
cmake --install "$(dirname "$BIN")" --prefix "$prefix" >"$WORK/install.log" 2>&1 ||
    fail "cmake --install: $(cat "$WORK/install.log")"
units=$prefix/lib/systemd/system
# a staged install (packaging) writes the paths of the prefix, not of the stage
DESTDIR=$WORK/stage cmake --install "$(dirname "$BIN")" --prefix /usr >>"$WORK/install.log" 2>&1 ||
    fail "DESTDIR=... cmake --install: $(cat "$WORK/install.log")"
staged=$(sed -n 's/^ExecStart=//p' "$WORK/stage/usr/lib/systemd/system/tapmesh-relay.service" 2>/dev/null || true)
[ "$staged" = /usr/bin/tapmesh-relay ] || fail "staged install: ExecStart=$staged, not /usr/bin/tapmesh-relay"
examples=$prefix/share/doc/tapmesh/examples/systemd
for f in "$units/tapmesh-capture@.service" "$units/tapmesh-relay.service" \
    "$units/tapmesh-collect.service" "$prefix/lib/sysusers.d/tapmesh.conf" \
    "$examples/capture-eth0.env" "$examples/relay.env" "$examples/collect.env"; do
    [ -f "$f" ] || fail "not installed: ${f#"$prefix"/}"
done

# values UNIT KEY: every value assigned to KEY in UNIT, one a line
values() { sed -n "s/^$2=//p" "$1"; }

# ExecStart: the program installed under this prefix, and nothing else
for svc in capture relay collect; do
    unit=$units/tapmesh-$svc.service
    [ "$svc" = capture ] && unit=$units/tapmesh-capture@.service
    exec_start=$(values "$unit" ExecStart)
    [ "$exec_start" = "$prefix/bin/tapmesh-$svc" ] ||
        fail "$(basename "$unit"): ExecStart=$exec_start, not $prefix/bin/tapmesh-$svc"
    [ -x "$exec_start" ] || fail "$exec_start is not installed"
    # specifiers: %% for a literal %, else only those meant (instance,
    # state directory, credentials, host name, unit name)
    stray=$(sed 's/%%//g' "$unit" | grep -n '%[^iIShdn]' || true)
    [ -z "$stray" ] || fail "$(basename "$unit"): a % that systemd would expand: $stray"
done

# the capture agent may hold CAP_NET_RAW and nothing else, from the start
# (ambient, as a dynamic user) to the bounding set; the others none at all
cap_unit=$units/tapmesh-capture@.service
[ "$(values "$cap_unit" CapabilityBoundingSet)" = CAP_NET_RAW ] ||
    fail "capture: CapabilityBoundingSet is not exactly CAP_NET_RAW: $(values "$cap_unit" CapabilityBoundingSet | tr '\n' ' ')"
[ "$(values "$cap_unit" AmbientCapabilities)" = CAP_NET_RAW ] ||
    fail "capture: AmbientCapabilities is not exactly CAP_NET_RAW: $(values "$cap_unit" AmbientCapabilities | tr '\n' ' ')"
for svc in relay collect; do
    unit=$units/tapmesh-$svc.service
    [ "$(grep -c '^CapabilityBoundingSet=' "$unit")" = 1 ] && grep -qx 'CapabilityBoundingSet=' "$unit" ||
        fail "$svc: CapabilityBoundingSet= must be empty, once: $(grep '^CapabilityBoundingSet=' "$unit" | tr '\n' ' ')"
    ! grep -q '^AmbientCapabilities=' "$unit" || fail "$svc: AmbientCapabilities set"
done
for unit in "$units"/tapmesh-*.service; do
    for setting in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
        Restart=on-failure; do
        grep -qx "$setting" "$unit" || fail "$(basename "$unit"): no $setting"
    done
done

# systemd-analyze verify: nothing about our units (the template as an
# instance). Documentation= names the manual pages installed beside them
# (found through MANPATH where man is installed).
ln -s tapmesh-capture@.service "$units/tapmesh-capture@eth0.service"
man_check=--man=no
command -v man >/dev/null && man_check=--man=yes
verify=$(cd "$units" && MANPATH=$prefix/share/man systemd-analyze verify "$man_check" \
    tapmesh-capture@eth0.service tapmesh-relay.service tapmesh-collect.service 2>&1) ||
    fail "systemd-analyze verify failed: $verify"
if grep -q 'tapmesh' <<<"$verify"; then
    fail "systemd-analyze verify: $verify"
fi
[ -z "$verify" ] || log "systemd-analyze verify said (about other units): $verify"

# sandboxing: the exposure level systemd computes stays low (1.x "OK";
# an unsandboxed service is 9.6)
for u in tapmesh-capture@eth0.service tapmesh-relay.service tapmesh-collect.service; do
    out=$(cd "$units" && systemd-analyze security --offline=yes --threshold=25 --no-pager "$u" 2>&1) ||
        fail "$u: exposure above 2.5: $(tail -n 1 <<<"$out")"
    log "$(tail -n 1 <<<"$out")"
done

# the user the collector runs as: systemd-sysusers makes it from the
# installed entry, in an empty root
if command -v systemd-sysusers >/dev/null; then
    mkdir -p "$WORK/root/etc"
    systemd-sysusers --root="$WORK/root" "$prefix/lib/sysusers.d/tapmesh.conf" >"$WORK/sysusers.log" 2>&1 ||
        fail "systemd-sysusers: $(cat "$WORK/sysusers.log")"
    grep -q '^tapmesh:' "$WORK/root/etc/passwd" && grep -q '^tapmesh:' "$WORK/root/etc/group" ||
        fail "systemd-sysusers made no user tapmesh"
    # (a transient user, DynamicUser=yes, needs no entry)
    for u in tapmesh-relay.service tapmesh-collect.service tapmesh-capture@.service; do
        user=$(values "$units/$u" User)
        [ -z "$user" ] || grep -qx 'DynamicUser=yes' "$units/$u" || grep -q "^$user:" "$WORK/root/etc/passwd" ||
            fail "$u: User=$user is not made by sysusers.d"
    done
fi

# every setting named, in the units (Environment=) and the example files
# (commented out or not), is one of the program's settings
python3 - "$prefix/bin" "$units" "$examples" <<'EOF' || fail "a setting that is none (above)"
import os, re, subprocess, sys
bindir, units, examples = sys.argv[1:]
bad = 0
def settings(prog):
    text = subprocess.run([os.path.join(bindir, prog), "--help"], capture_output=True,
                          text=True, check=True).stdout
    return set(re.findall(r"^  ([A-Z][A-Z0-9_]*), --", text, re.M))
for svc, unit, example in (("capture", "tapmesh-capture@.service", "capture-eth0.env"),
                           ("relay", "tapmesh-relay.service", "relay.env"),
                           ("collect", "tapmesh-collect.service", "collect.env")):
    known = settings("tapmesh-" + svc)
    if not known:
        print(f"tapmesh-{svc} --help lists no setting"); bad += 1
    names = []
    for line in open(os.path.join(units, unit)):
        m = re.match(r"Environment=(.*)", line)
        if m:
            names += [(unit, a.split("=", 1)[0]) for a in m.group(1).split()]
    named_in_file = 0
    for line in open(os.path.join(examples, example)):
        m = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line)
        if m:
            names.append((example, m.group(1)))
            named_in_file += 1
    if named_in_file == 0:
        print(f"{example}: names no setting"); bad += 1
    for where, name in names:
        plain = name[len("TAPMESH_"):] if name.startswith("TAPMESH_") else name
        if plain not in known:
            print(f"{where}: {name} is no setting of tapmesh-{svc}"); bad += 1
sys.exit(1 if bad else 0)
EOF
log "ok"
