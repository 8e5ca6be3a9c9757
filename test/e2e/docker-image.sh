#!/usr/bin/env bash
# docker/Dockerfile, without a container engine:
#  - every file it copies is in the repository and not left out of the
#    build context by .dockerignore; every stage it copies from is built
#    before; its bases are Debian 12 (the archive the packages are checked in);
#  - every package it installs exists in Debian 12's archive (apt-cache, on
#    Debian 12 only); the build stage installs only what
#    scripts/install-deps.sh installs, and every library the CMake project
#    asks pkg-config for comes with one of them;
#  - the runtime stage installs exactly the packages that hold the libraries
#    the built programs are linked with (libc6 is in the base), so that
#    nothing is missing at run time and nothing else is there; libcap2-bin,
#    for setcap, is removed in the same step; tapmesh-capture gets
#    cap_net_raw; the user is not root;
#  - the image's healthcheck (docker/healthcheck.sh) against a real
#    service: 0 while /healthz answers 200 (the address from
#    METRICS_ADDRPORT or the argument), 0 with metrics turned off, 1 when
#    nothing listens, when the service does not answer (stopped), and on a
#    503, whose reason it prints.
# Skipped without python3.
. "$(dirname "$0")/lib.sh"
need curl ss readelf
py=$(command -v python3 || true)
[ -n "$py" ] || skip "python3 is not installed"

dockerfile=$root/docker/Dockerfile

# ---- the Dockerfile, read ------------------------------------------------------------------
# stage lines: "STAGE name base"; "COPY stage from src dst"; "APT stage pkg";
# "RUN stage command"; "USER stage user"; "HEALTHCHECK stage words"
"$py" - "$dockerfile" >"$WORK/dockerfile.txt" <<'PY' || fail "cannot read $dockerfile"
import json, re, shlex, sys

args, stage, out = {}, None, []
text = open(sys.argv[1]).read()
text = re.sub(r"\\\n", " ", text)  # continuation lines
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word, rest = word.upper(), rest.strip()
    expand = lambda s: re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), s)
    if word == "ARG":
        name, _, value = rest.partition("=")
        args[name] = value
    elif word == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
        stage = m.group(2) or "stage%d" % len(out)
        print("STAGE", stage, expand(m.group(1)))
    elif word == "COPY":
        parts = shlex.split(rest)
        frm = next((p.split("=", 1)[1] for p in parts if p.startswith("--from=")), "-")
        paths = [p for p in parts if not p.startswith("--")]
        for src in paths[:-1]:
            print("COPY", stage, frm, src, paths[-1])
    elif word == "RUN":
        print("RUN", stage, rest)
        for cmd in re.split(r"&&|;", rest):
            w = shlex.split(cmd.replace("\n", " "))
            if "apt-get" in w and "install" in w:
                for p in w[w.index("install") + 1:]:
                    if not p.startswith("-") and "=" not in p:
                        print("APT", stage, p)
    elif word == "USER":
        print("USER", stage, rest)
    elif word == "HEALTHCHECK":
        m = re.search(r"CMD\s+(\[.*\])", rest)
        print("HEALTHCHECK", stage, " ".join(json.loads(m.group(1))) if m else rest)
PY
stages=$(awk '$1 == "STAGE" {print $2}' "$WORK/dockerfile.txt")
last=$(echo "$stages" | tail -n 1)
[ "$last" = runtime ] || fail "the last stage (the default image) is $last, not runtime"
for s in build traffic runtime; do
    echo "$stages" | has "^$s\$" || fail "no stage $s"
done
while read -r base; do
    case $base in debian:12 | debian:12-slim | debian:bookworm | debian:bookworm-slim) ;;
    *) fail "base image $base is not Debian 12" ;; esac
done < <(awk '$1 == "STAGE" {print $3}' "$WORK/dockerfile.txt")

# ---- what it copies ------------------------------------------------------------------------
# .dockerignore patterns, as Docker reads them: relative to the context,
# leading slashes dropped, ** any number of directories
ignored() {
    "$py" - "$root/.dockerignore" "$1" <<'PY'
import fnmatch, re, sys
pats = [l.strip().lstrip("/") for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
path = sys.argv[2].rstrip("/")
def match(pat, p):
    rx = "^" + re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "(/.*)?$"
    return re.match(rx, p) is not None
hit = False
for pat in pats:
    neg = pat.startswith("!")
    if match(pat.lstrip("!"), path):
        hit = not neg
sys.exit(0 if hit else 1)
PY
}
while read -r _ stage from src dst; do
    [ "$from" = - ] || continue
    [ -e "$root/$src" ] || fail "COPY $src (stage $stage): not in the repository"
    ! ignored "$src" || fail "COPY $src (stage $stage): .dockerignore leaves it out of the build context"
done < <(awk '$1 == "COPY"' "$WORK/dockerfile.txt")
bad=$(awk '$1 == "STAGE" {s[$2] = 1} $1 == "COPY" && $3 != "-" && !($3 in s) {print $3}' "$WORK/dockerfile.txt")
[ -z "$bad" ] || fail "COPY --from=$bad: no such stage before it"
! ignored CMakeLists.txt || fail ".dockerignore leaves out CMakeLists.txt"
! ignored common/cfg.c || fail ".dockerignore leaves out the sources"

# ---- packages -------------------------------------------------------------------------------
pkgs() { awk -v s="$1" '$1 == "APT" && $2 == s {print $3}' "$WORK/dockerfile.txt" | sort -u; }
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] && command -v apt-cache >/dev/null; then
    all=$(printf '%s\n' $(pkgs build) $(pkgs traffic) $(pkgs runtime) | sort -u)
    # shellcheck disable=SC2086
    found=$(apt-cache show --no-all-versions $all 2>/dev/null | sed -n 's/^Package: //p' | sort -u)
    missing=$(comm -23 <(printf '%s\n' "$all") <(printf '%s\n' "$found"))
    [ -z "$missing" ] || fail "not in Debian 12's archive: $(echo $missing)"
    log "every package the Dockerfile installs is in Debian 12's archive"
else
    log "not Debian 12 here: package names not checked against the archive"
fi
deps=$(sed -n '/^packages="/,/^"/p' "$root/scripts/install-deps.sh" | tr -s ' \n"' '\n' | grep -v '^packages=' | sort -u)
for p in $(pkgs build); do
    printf '%s\n' "$deps" | has "^$p\$" || fail "build stage: $p is not one of scripts/install-deps.sh's packages"
done
need dpkg-query pkg-config apt-cache ldd
# what the build stage brings: its packages and what they depend on
# (libpcap-dev is libpcap0.8-dev's name)
# shellcheck disable=SC2046
brought=$( (pkgs build; apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $(pkgs build) 2>/dev/null | sed -n 's/^ *|\{0,1\}Depends: //p') | sort -u)
for mod in $(grep -o 'pkg_check_modules([A-Z]* REQUIRED IMPORTED_TARGET [a-z0-9_.-]*' "$root/CMakeLists.txt" | awk '{print $NF}'); do
    pc=$(pkg-config --variable=pcfiledir "$mod")/$mod.pc
    owner=$(dpkg-query -S "*/$(basename "$(dirname "$pc")")/$mod.pc" 2>/dev/null | cut -d: -f1 | head -n 1)
    [ -n "$owner" ] || fail "pkg-config module $mod: no Debian package holds $pc"
    printf '%s\n' "$brought" | has "^$owner\$" || fail "build stage: nothing installs $owner (pkg-config $mod)"
done

# the runtime libraries: the package of every library the programs need,
# where the loader finds it here
patterns=()
for p in capture relay collect keygen top; do
    while read -r so _ path _; do
        case $so in libasan.* | libubsan.* | linux-vdso* | /*) continue ;; esac # sanitizer builds, the loader
        readelf -d "$BIN/$p/tapmesh-$p" | grep -q "(NEEDED).*\[$so\]" || continue # only direct needs
        [ -n "$path" ] && [ "$path" != "not" ] || fail "tapmesh-$p needs $so, which is not found here"
        patterns+=("*/$(basename "$(dirname "$path")")/$so")
    done < <(ldd "$BIN/$p/tapmesh-$p")
done
mapfile -t patterns < <(printf '%s\n' "${patterns[@]}" | sort -u)
owners=$(dpkg-query -S "${patterns[@]}" 2>"$WORK/dpkg.err") || fail "libraries no package holds: $(cat "$WORK/dpkg.err")"
needed=$(printf '%s\n' "$owners" | cut -d: -f1 | grep -v '^libc6$' | sort -u)
runtime=$(pkgs runtime | grep -v '^libcap2-bin$' || true)
[ "$needed" = "$runtime" ] ||
    fail "runtime stage installs '$(echo $runtime)'; the programs need '$(echo $needed)' (and libc6)"
log "runtime packages: $(echo $runtime) (and libc6, in the base): what the programs are linked with, nothing else"
run=$(awk '$1 == "RUN" && $2 == "runtime"' "$WORK/dockerfile.txt")
if pkgs runtime | has '^libcap2-bin$'; then
    printf '%s\n' "$run" | grep 'setcap cap_net_raw+ep /usr/local/bin/tapmesh-capture' | has 'purge.*libcap2-bin' ||
        fail "runtime stage: libcap2-bin is not removed in the step that runs setcap"
fi
printf '%s\n' "$run" | has 'setcap cap_net_raw+ep /usr/local/bin/tapmesh-capture' ||
    fail "runtime stage: tapmesh-capture gets no CAP_NET_RAW file capability"
user=$(awk '$1 == "USER" && $2 == "runtime" {print $3}' "$WORK/dockerfile.txt" | tail -n 1)
case ${user%%:*} in '' | 0 | root) fail "runtime stage runs as '${user:-root}'" ;; esac
hc=$(awk '$1 == "HEALTHCHECK" && $2 == "runtime" {print $3}' "$WORK/dockerfile.txt")
awk -v hc="$hc" '$1 == "COPY" && $2 == "runtime" && $3 == "-" && $5 ~ ("/" hc "$") {found = 1} END {exit !found}' \
    "$WORK/dockerfile.txt" || fail "HEALTHCHECK runs $hc, which the runtime stage does not copy in"

# ---- the healthcheck against a real service ---------------------------------------------------
hcheck=$root/docker/healthcheck.sh
pick_port
mport=$PORT
pick_port
start collect COLLECT_ENDPOINT="tcp://127.0.0.1:$PORT" METRICS_ADDRPORT="127.0.0.1:$mport" \
    OUTPUT="$WORK/out.pcapng" -- "$COLLECT"
wait_listening "$mport" 10
out=$(env -i METRICS_ADDRPORT="127.0.0.1:$mport" bash "$hcheck") || fail "healthy collector: $out"
[ "$out" = "127.0.0.1:$mport: ok" ] || fail "healthy collector: '$out'"
out=$(env -i TAPMESH_METRICS_ADDRPORT=":$mport" METRICS_ADDRPORT=":1" bash "$hcheck") ||
    fail "TAPMESH_METRICS_ADDRPORT does not win: $out"
out=$(env -i bash "$hcheck" "$mport") || fail "PORT as the argument: $out"
out=$(env -i METRICS_ADDRPORT= bash "$hcheck") || fail "metrics off: $out"
[[ "$out" == *"nothing to probe"* ]] || fail "metrics off: '$out'"
pick_port
rc=0
out=$(env -i METRICS_ADDRPORT="127.0.0.1:$PORT" bash "$hcheck") || rc=$?
[ "$rc" = 1 ] && [[ "$out" == *"nothing listens"* ]] || fail "nothing listening: $rc '$out'"
kill -STOP "${PIDS[collect]}"
# stopped, every thread (the HTTP server's too), before the probe
for i in $(seq 1 100); do
    stopped=1
    for t in /proc/"${PIDS[collect]}"/task/*/stat; do
        [ "$(awk '{print $3}' "$t" 2>/dev/null)" = T ] || stopped=0
    done
    [ "$stopped" = 1 ] && break
    sleep 0.02
done
rc=0
SECONDS_BEFORE=$SECONDS
out=$(env -i HEALTHCHECK_TIMEOUT_S=1 METRICS_ADDRPORT="127.0.0.1:$mport" bash "$hcheck") || rc=$?
kill -CONT "${PIDS[collect]}"
[ "$rc" = 1 ] && [[ "$out" == *"no answer within 1 s"* ]] || fail "stopped service: $rc '$out'"
[ $((SECONDS - SECONDS_BEFORE)) -le 3 ] || fail "stopped service: the healthcheck took $((SECONDS - SECONDS_BEFORE)) s"
stop collect
# a 503, as a stuck event loop answers
pick_port
start fake503 -- "$py" -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"event loop stuck for 12 s\n"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$PORT"
end=$((SECONDS + 10))
until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
    [ $SECONDS -lt $end ] || fail "the 503 server did not start"
    sleep 0.05
done
rc=0
out=$(env -i bash "$hcheck" "127.0.0.1:$PORT") || rc=$?
[ "$rc" = 1 ] && [[ "$out" == *" 503 "*"event loop stuck for 12 s" ]] || fail "503: $rc '$out'"
log "ok"
