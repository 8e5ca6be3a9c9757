#!/usr/bin/env bash
# The compose lab (deploy/compose/docker-compose.yml), without a container
# engine:
#  - `docker-compose config` (or `docker compose config`) accepts it, with
#    no warning (an unset variable, say);
#  - what it says, checked against the programs and the other files: the
#    services the lab promises; every environment variable a tapmesh service
#    is given is a setting of its program (--help), since a mistyped one
#    would only warn; CURVE and NODE_ID on every hop; each RELAY_ENDPOINT
#    reaches, on a network both share, the service that binds that port,
#    and the hops form the lab's chain; Prometheus (the file it mounts)
#    scrapes all five tapmesh services on their metrics ports, Grafana's
#    provisioning and home dashboard are where it mounts them; every file
#    mounted and every build context is in the repository; no published
#    port but Prometheus's and Grafana's, on 127.0.0.1; hardening that
#    matters (the capture agents' NET_RAW, and no no-new-privileges, which
#    voids their file capability on some engines);
#  - the keygen service's script, run with the real tapmesh-keygen into
#    directories standing for its volumes (as root: handing them to nobody
#    and running as that user): each service's CURVE_* files are where its
#    mounts put them, its next hop's public key is the one that hop holds,
#    each allow-list holds exactly the peers that connect, agents' for their
#    NODE_ID and relays' as relays, and no volume holds another's secret;
#    run again, it keeps the pairs;
#  - then the five tapmesh services run on loopback with the lab's own
#    environment (endpoints, ports and volume paths mapped, each agent
#    reading on standard input the file its traffic generator replays): the
#    healthcheck the lab uses says each service is healthy, and the
#    collector's rotating pcapng holds each agent's packets byte for byte,
#    sent through both relays with CURVE;
#  - as root, each edge for real (below).
# Skipped without docker-compose / docker compose, or without python3 and
# its yaml module (Debian: docker-compose, python3-yaml).
. "$(dirname "$0")/lib.sh"
need curl ss tshark mergecap capinfos
unset DLQ_DIR # the lab's agents say where their dead letters go

lab=$root/deploy/compose
file=$lab/docker-compose.yml
if command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    skip "neither docker-compose nor docker compose is installed (Debian: apt-get install docker-compose)"
fi
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then
        py=$p
        break
    fi
done
[ -n "$py" ] || skip "no python3 with the yaml module (Debian: python3-yaml)"

# ---- compose accepts it ------------------------------------------------------------
# variables the file reads must come from it or its .env, not from here
for v in $(grep -o '\${[A-Z_]*' "$file" | tr -d '${' | sort -u); do unset "$v"; done
rc=0
"${compose[@]}" -f "$file" config >"$WORK/config.yml" 2>"$WORK/config.err" || rc=$?
[ "$rc" = 0 ] || fail "${compose[*]} config: status $rc: $(cat "$WORK/config.err")"
! grep -i 'warn' "$WORK/config.err" || fail "${compose[*]} config warns: $(cat "$WORK/config.err")"

for p in capture relay collect; do
    "$BIN/$p/tapmesh-$p" --help >"$WORK/$p.help" || fail "tapmesh-$p --help"
done

# ---- the static checks, the keys, and the plan for the run on loopback --------------
ports=()
for _ in 1 2 3 4 5 6 7 8; do
    pick_port
    ports+=("$PORT")
done
chmod 0711 "$WORK" # nobody may pass through to the volumes keygen hands it
owner=
[ "$(id -u)" != 0 ] || owner=nobody
mkdir -p "$WORK/live"
"$py" - "$WORK/config.yml" "$WORK" "$root" "$BIN/keygen" "$owner" "${ports[@]}" \
    >"$WORK/plan.txt" 2>"$WORK/checks.txt" <<'PY' || fail "$(cat "$WORK/checks.txt")"
import fnmatch, json, os, re, shlex, subprocess, sys, yaml

cfg_path, work, root, keygen_dir, owner = sys.argv[1:6]
free_ports = [int(p) for p in sys.argv[6:]]
cfg = yaml.safe_load(open(cfg_path))
services = cfg.get("services") or {}
errors = []


def err(msg):
    errors.append(msg)


def done():
    if errors:
        sys.stderr.write("".join("compose lab: %s\n" % e for e in errors))
        sys.exit(1)


EXPECTED = {"keygen", "traffic-a", "capture-a", "traffic-b", "capture-b",
            "relay-site", "relay-core", "collect", "prometheus", "grafana"}
CHAIN = {("capture-a", "relay-site"), ("capture-b", "relay-site"),
         ("relay-site", "relay-core"), ("relay-core", "collect")}
for s in sorted(EXPECTED - set(services)):
    err("no service %s" % s)
for s in sorted(set(services) - EXPECTED):
    err("service %s is none the lab describes" % s)
done()


def words(x):
    if x is None:
        return []
    return shlex.split(x) if isinstance(x, str) else [str(w) for w in x]


def env_of(svc):
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(item.split("=", 1) if "=" in item else (item, None) for item in e)
    return {k: ("" if v is None else str(v)) for k, v in e.items()}


def mounts_of(svc):
    """(kind, source, target, read_only) for each volume of a service"""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            kind = "bind" if v.get("type") == "bind" else "volume"
            out.append((kind, v.get("source"), v["target"], bool(v.get("read_only"))))
        else:
            parts = v.split(":")
            src, tgt = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            kind = "bind" if src.startswith("/") or src.startswith(".") else "volume"
            out.append((kind, src, tgt, "ro" in mode.split(",")))
    return out


def settings(program):
    rows = set()
    for line in open(os.path.join(work, program + ".help")):
        m = re.match(r"^  ([A-Z][A-Z0-9_]*), --", line)
        if m:
            rows.add(m.group(1))
    return rows


PROGRAMS = {"tapmesh-capture": "capture", "tapmesh-relay": "relay", "tapmesh-collect": "collect"}
SETTINGS = {p: settings(p) for p in PROGRAMS.values()}
tap = {}  # service -> program
for name, svc in services.items():
    cmd = words(svc.get("entrypoint")) + words(svc.get("command"))
    if cmd and os.path.basename(cmd[0]) in PROGRAMS:
        tap[name] = PROGRAMS[os.path.basename(cmd[0])]
want = {"capture-a": "capture", "capture-b": "capture", "relay-site": "relay",
        "relay-core": "relay", "collect": "collect"}
if tap != want:
    err("tapmesh services and programs: %s, expected %s" % (sorted(tap.items()), sorted(want.items())))
done()
ENV = {name: env_of(services[name]) for name in services}


# ---- settings -----------------------------------------------------------------------
NEEDS = {"capture": ["NODE_ID", "METRICS_ADDRPORT", "RELAY_ENDPOINT", "CURVE_SECRET_KEY_FILE",
                     "CURVE_SERVER_PUBLIC_KEY"],
         "relay": ["NODE_ID", "METRICS_ADDRPORT", "COLLECT_ENDPOINT", "RELAY_ENDPOINT",
                   "CURVE_SECRET_KEY_FILE", "CURVE_SERVER_PUBLIC_KEY", "CURVE_ALLOWED_KEYS_DIR"],
         "collect": ["METRICS_ADDRPORT", "COLLECT_ENDPOINT", "CURVE_SECRET_KEY_FILE",
                     "CURVE_ALLOWED_KEYS_DIR", "OUTPUT", "STATE_DIR"]}
for name, prog in sorted(tap.items()):
    env = ENV[name]
    for k in sorted(env):
        base = k[len("TAPMESH_"):] if k.startswith("TAPMESH_") else k
        if base not in SETTINGS[prog]:
            err("%s: %s is no setting of tapmesh-%s (see its --help)" % (name, k, prog))
    for k in NEEDS[prog]:
        if not env.get(k) and not env.get("TAPMESH_" + k):
            err("%s: %s is not set" % (name, k))
    if prog == "collect" and not (env.get("ROTATE_S", "0") != "0" or env.get("ROTATE_MB", "0") != "0"):
        err("%s: the output does not rotate (ROTATE_S or ROTATE_MB)" % name)
    if prog == "capture" and not env.get("DEVICE"):
        err("%s: DEVICE is not set: the lab's agents capture live" % name)
done()


def get(name, key):
    env = ENV[name]
    return env.get("TAPMESH_" + key, env.get(key, ""))


def port_of(endpoint):
    m = re.match(r"^tcp://(.*):(\d+)$", endpoint)
    return (m.group(1), int(m.group(2))) if m else (None, None)


def addrport(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


# ---- networks: who reaches whom by which name ---------------------------------------
def owner_of(name):
    mode = services[name].get("network_mode") or ""
    return mode[len("service:"):] if mode.startswith("service:") else name


def networks_of(name):
    svc = services[owner_of(name)]
    if svc.get("network_mode"):
        return {}
    nets = svc.get("networks")
    if nets is None:
        return {"default": {}}
    if isinstance(nets, list):
        return {n: {} for n in nets}
    return {n: (v or {}) for n, v in nets.items()}


names_on = {}  # network -> {dns name -> netns owner}
for name in services:
    if owner_of(name) != name:
        continue
    for net, opts in networks_of(name).items():
        names_on.setdefault(net, {})[name] = name
        for alias in opts.get("aliases") or []:
            names_on[net][alias] = name


def resolve(frm, host):
    """the netns owner that `host` names for service `frm`, or None"""
    for net in networks_of(frm):
        if host in names_on.get(net, {}):
            return names_on[net][host]
    return None


def listener(netns, port, key):
    """the tapmesh service in that network namespace whose `key` binds `port`"""
    for name in tap:
        if owner_of(name) != netns:
            continue
        value = get(name, key)
        if key == "COLLECT_ENDPOINT":
            host, p = port_of(value)
            if host in ("*", "0.0.0.0") and p == port:
                return name
        elif value:
            host, p = addrport(value)
            if p == port and host not in ("127.0.0.1", "localhost", "::1"):
                return name
    return None


edges = set()
next_hops = {}
for name, prog in sorted(tap.items()):
    host, port = addrport(get(name, "METRICS_ADDRPORT"))
    if host in ("127.0.0.1", "localhost", "::1"):
        err("%s: METRICS_ADDRPORT=%s: Prometheus cannot reach loopback" % (name, get(name, "METRICS_ADDRPORT")))
    if prog == "capture" or prog == "relay":
        hops = []
        for ep in get(name, "RELAY_ENDPOINT").split(","):
            host, port = port_of(ep)
            netns = resolve(name, host) if host else None
            target = listener(netns, port, "COLLECT_ENDPOINT") if netns else None
            if not target:
                err("%s: RELAY_ENDPOINT=%s: no service binds that port behind that name on a network %s is on"
                    % (name, ep, name))
                continue
            edges.add((name, target))
            hops.append(target)
        next_hops[name] = hops
    if prog != "capture":
        host, port = port_of(get(name, "COLLECT_ENDPOINT"))
        if host not in ("*", "0.0.0.0"):
            err("%s: COLLECT_ENDPOINT=%s: the other containers cannot reach it" % (name, get(name, "COLLECT_ENDPOINT")))
if edges and edges != CHAIN:
    err("the hops are %s, expected %s" % (sorted(edges), sorted(CHAIN)))
done()


# ---- hardening, health, start order -------------------------------------------------
for name, svc in sorted(services.items()):
    for p in svc.get("ports") or []:
        if name not in ("prometheus", "grafana"):
            err("%s publishes a port (%s): only Prometheus and Grafana may" % (name, p))
            continue
        ip = p.get("host_ip", "") if isinstance(p, dict) else (p.split(":")[0] if p.count(":") >= 2 else "")
        if ip != "127.0.0.1":
            err("%s publishes %s beyond 127.0.0.1" % (name, p))
for name, prog in sorted(tap.items()):
    svc = services[name]
    hc = words((svc.get("healthcheck") or {}).get("test"))
    if not any(os.path.basename(w) == "tapmesh-healthcheck" for w in hc):
        err("%s: no healthcheck with tapmesh-healthcheck (GET /healthz)" % name)
    dep = svc.get("depends_on") or {}
    if not isinstance(dep, dict) or (dep.get("keygen") or {}).get("condition") != "service_completed_successfully":
        err("%s: does not wait for keygen (depends_on condition service_completed_successfully)" % name)
    if str(svc.get("user", "")).split(":")[0] in ("0", "root"):
        err("%s runs as root" % name)
    if not svc.get("read_only"):
        err("%s: root file system not read-only" % name)
    if [c.upper() for c in svc.get("cap_drop") or []] != ["ALL"]:
        err("%s: cap_drop is not [ALL]" % name)
    caps = sorted(c.upper().replace("CAP_", "") for c in svc.get("cap_add") or [])
    nnp = any(o.replace("=", ":").startswith("no-new-privileges:true") or o == "no-new-privileges"
              for o in svc.get("security_opt") or [])
    if prog == "capture":
        if caps != ["NET_RAW"]:
            err("%s: cap_add %s, expected [NET_RAW] (tapmesh-capture's file capability needs it in the bounding set)"
                % (name, caps))
        if nnp:
            err("%s: no-new-privileges voids tapmesh-capture's file capability on engines that empty the "
                "permitted set before exec (Docker before moby#45511): it could not open DEVICE" % name)
    else:
        if caps:
            err("%s: cap_add %s: it needs none" % (name, caps))
        if not nnp:
            err("%s: no no-new-privileges" % name)
done()


# ---- files: mounts, build contexts ----------------------------------------------------
def in_repo(path):
    real = os.path.realpath(path)
    return real == root or real.startswith(root + "/")


declared = set((cfg.get("volumes") or {}).keys())
for name, svc in sorted(services.items()):
    for kind, src, tgt, ro in mounts_of(svc):
        if kind == "bind":
            if not os.path.exists(src):
                err("%s mounts %s, which does not exist" % (name, src))
            elif not in_repo(src):
                err("%s mounts %s, outside the repository" % (name, src))
            elif not ro:
                err("%s mounts %s writable" % (name, src))
        elif src not in declared:
            err("%s mounts volume %s, which is not declared" % (name, src))
    build = svc.get("build")
    if build:
        ctx = build if isinstance(build, str) else build.get("context")
        dockerfile = os.path.join(ctx, (build.get("dockerfile") if isinstance(build, dict) else None) or "Dockerfile")
        if not os.path.isdir(ctx) or not in_repo(ctx):
            err("%s: build context %s is not a directory of the repository" % (name, ctx))
        elif not os.path.isfile(dockerfile):
            err("%s: %s does not exist" % (name, dockerfile))
        elif isinstance(build, dict) and build.get("target"):
            stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", open(dockerfile).read())
            if build["target"] not in stages:
                err("%s: build target %s is no stage of %s (%s)" % (name, build["target"], dockerfile, stages))
done()


def host_path(name, path):
    """where a container path of service `name` is on this side: (kind, source, rest)"""
    best = None
    for kind, src, tgt, ro in mounts_of(services[name]):
        if path == tgt or path.startswith(tgt.rstrip("/") + "/"):
            if not best or len(tgt) > len(best[2]):
                best = (kind, src, tgt)
    if not best:
        return None
    kind, src, tgt = best
    rest = path[len(tgt):].lstrip("/")
    base = src if kind == "bind" else os.path.join(work, "vol", src)
    return os.path.join(base, rest) if rest else base


# ---- Prometheus and Grafana ---------------------------------------------------------------
prom = services["prometheus"]
conf = next((w.split("=", 1)[1] for w in words(prom.get("command")) if w.startswith("--config.file=")),
            "/etc/prometheus/prometheus.yml")
conf_host = host_path("prometheus", conf)
if not conf_host or not os.path.isfile(conf_host):
    err("prometheus: its configuration %s is not mounted from a file" % conf)
done()
pconf = yaml.safe_load(open(conf_host)) or {}
for rule in pconf.get("rule_files") or []:
    path = rule if rule.startswith("/") else os.path.join(os.path.dirname(conf), rule)
    hp = host_path("prometheus", path)
    if not hp or not os.path.isfile(hp):
        err("prometheus: rule file %s (%s) is not mounted" % (rule, path))
scraped = set()
for job in pconf.get("scrape_configs") or []:
    for sc in job.get("static_configs") or []:
        for t in sc.get("targets") or []:
            host, port = addrport(t)
            netns = resolve("prometheus", host)
            target = listener(netns, port, "METRICS_ADDRPORT") if netns else None
            if not target:
                err("prometheus: target %s (job %s): no tapmesh service's metrics there" % (t, job.get("job_name")))
            else:
                scraped.add(target)
for name in sorted(set(tap) - scraped):
    err("prometheus does not scrape %s" % name)

graf = services["grafana"]
genv = env_of(graf)
prov = host_path("grafana", genv.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
if not prov or not os.path.isdir(os.path.join(prov, "dashboards")) or not os.path.isdir(os.path.join(prov, "datasources")):
    err("grafana: no provisioning (dashboards/, datasources/) mounted at /etc/grafana/provisioning")
else:
    for f in sorted(os.listdir(os.path.join(prov, "dashboards"))):
        for p in (yaml.safe_load(open(os.path.join(prov, "dashboards", f))) or {}).get("providers") or []:
            path = (p.get("options") or {}).get("path", "")
            hp = host_path("grafana", path)
            if not hp or not os.path.isdir(hp) or not any(x.endswith(".json") for x in os.listdir(hp)):
                err("grafana: dashboards provider %s reads %s, where no dashboard is mounted" % (f, path))
    for f in sorted(os.listdir(os.path.join(prov, "datasources"))):
        for d in (yaml.safe_load(open(os.path.join(prov, "datasources", f))) or {}).get("datasources") or []:
            m = re.match(r"^https?://([^:/]+):(\d+)", d.get("url", ""))
            if not m or resolve("grafana", m.group(1)) != "prometheus" or m.group(2) != "9090":
                err("grafana: datasource %s: %s is not the lab's Prometheus" % (d.get("name"), d.get("url")))
home = genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
if home and not os.path.isfile(host_path("grafana", home) or ""):
    err("grafana: home dashboard %s is not mounted" % home)
done()


# ---- keys -------------------------------------------------------------------------------
kg = services["keygen"]
script = host_path("keygen", (words(kg.get("entrypoint")) + words(kg.get("command")))[-1])
keys_root = env_of(kg).get("KEYS", "/keys")
kdir = os.path.join(work, "keygen")
os.makedirs(kdir)
os.makedirs(os.path.join(work, "vol"), exist_ok=True)
for kind, src, tgt, ro in mounts_of(kg):
    if kind == "volume":
        if not tgt.startswith(keys_root + "/"):
            err("keygen mounts %s at %s, outside KEYS=%s" % (src, tgt, keys_root))
            continue
        vol = os.path.join(work, "vol", src)
        os.makedirs(vol, 0o755)
        os.symlink(vol, os.path.join(kdir, tgt[len(keys_root) + 1:]))
done()


def run_keygen():
    env = {"PATH": keygen_dir + ":/usr/sbin:/usr/bin:/sbin:/bin", "KEYS": kdir, "KEYS_OWNER": owner}
    r = subprocess.run(["sh", script], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        err("keygen: %s exited %d: %s" % (script, r.returncode, r.stderr.strip()))
    done()


def cert(path):
    fields = {}
    for line in open(path):
        m = re.match(r'^\s*([\w-]+)\s*=\s*"(.*)"\s*$', line)
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def own_keys():
    keys = {}
    for name in sorted(tap):
        hp = host_path(name, get(name, "CURVE_SECRET_KEY_FILE"))
        if not hp or not os.path.isfile(hp):
            err("%s: CURVE_SECRET_KEY_FILE=%s: keygen made no such file in its volume"
                % (name, get(name, "CURVE_SECRET_KEY_FILE")))
            continue
        st = os.stat(hp)
        if st.st_mode & 0o077:
            err("%s: its secret certificate has mode %o" % (name, st.st_mode & 0o777))
        if owner and st.st_uid != int(subprocess.check_output(["id", "-u", owner])):
            err("%s: its secret certificate does not belong to %s" % (name, owner))
        c = cert(hp)
        if not c.get("secret-key") or not c.get("public-key"):
            err("%s: %s is no secret certificate" % (name, hp))
        keys[name] = c.get("public-key")
    done()
    return keys


run_keygen()
first = own_keys()
for name, prog in sorted(tap.items()):
    # the next hops' public keys
    if prog in ("capture", "relay"):
        given = get(name, "CURVE_SERVER_PUBLIC_KEY").split(",")
        hops = next_hops[name]
        if len(given) not in (1, len(hops)):
            err("%s: %d CURVE_SERVER_PUBLIC_KEY for %d next hops" % (name, len(given), len(hops)))
        for i, hop in enumerate(hops):
            value = given[0] if len(given) == 1 else given[i]
            if len(value) == 40 and not value.startswith("/"):
                key = value  # Z85
            else:
                hp = host_path(name, value)
                key = cert(hp).get("public-key") if hp and os.path.isfile(hp) else None
            if key != first[hop]:
                err("%s: CURVE_SERVER_PUBLIC_KEY=%s is not %s's public key" % (name, value, hop))
    # who may connect
    if prog in ("relay", "collect"):
        hp = host_path(name, get(name, "CURVE_ALLOWED_KEYS_DIR"))
        allowed = {}
        for f in sorted(os.listdir(hp)) if hp and os.path.isdir(hp) else []:
            if not f.startswith(".") and not f.endswith("_secret") and os.path.isfile(os.path.join(hp, f)):
                c = cert(os.path.join(hp, f))
                allowed[c.get("public-key")] = c
        peers = sorted(f for f, t in edges if t == name)
        if set(allowed) != {first[p] for p in peers}:
            err("%s: CURVE_ALLOWED_KEYS_DIR=%s lets in %d keys, not exactly %s's"
                % (name, get(name, "CURVE_ALLOWED_KEYS_DIR"), len(allowed), ", ".join(peers)))
        for p in peers:
            c = allowed.get(first[p], {})
            if tap[p] == "relay" and c.get("role") != "relay":
                err("%s: %s's certificate in its allow-list is not marked relay" % (name, p))
            if tap[p] == "capture":
                ids = [x for x in c.get("node-id", "").split(",") if x]
                if not any(fnmatch.fnmatchcase(get(p, "NODE_ID"), x) for x in ids):
                    err("%s: %s's certificate speaks for %s, not for its NODE_ID %s"
                        % (name, p, ids, get(p, "NODE_ID")))
    # no other service's secret in the volumes it mounts
    for kind, src, tgt, ro in mounts_of(services[name]):
        if kind != "volume" or not os.path.isdir(os.path.join(work, "vol", src)):
            continue
        own = os.path.realpath(host_path(name, get(name, "CURVE_SECRET_KEY_FILE")))
        for dirpath, _, files in os.walk(os.path.join(work, "vol", src)):
            for f in files:
                path = os.path.realpath(os.path.join(dirpath, f))
                if f.endswith("_secret") and path != own:
                    err("%s mounts %s, which holds another secret key: %s" % (name, src, f))
        if "keys" in tgt and not ro:
            err("%s mounts its keys (%s) writable" % (name, src))
run_keygen()
if own_keys() != first:
    err("keygen, run again, made new pairs instead of keeping them")
done()

# ---- the plan: each tapmesh service's environment on loopback ------------------------------
data_port = {}
metrics_port = {}
for name in sorted(tap):
    metrics_port[name] = free_ports.pop(0)
    if tap[name] != "capture":
        data_port[name] = free_ports.pop(0)


def image_source(name, path):
    """the repository file that service `name`'s image has at `path` (a COPY of its stage)"""
    build = services[name].get("build") or {}
    dockerfile = os.path.join(build.get("context", ""), build.get("dockerfile", "Dockerfile"))
    stage = None
    for line in open(dockerfile):
        m = re.match(r"(?i)^FROM\s+\S+\s+AS\s+(\S+)", line)
        if m:
            stage = m.group(1)
        m = re.match(r"(?i)^COPY\s+(?!--)(\S+)\s+(\S+)\s*$", line)
        if m and stage == build.get("target") and m.group(2) == path:
            return os.path.join(build["context"], m.group(1))
    err("%s: %s is not copied into its image" % (name, path))
    done()


def image_entrypoint(name):
    """service `name`'s entrypoint: its own, or its image's (the ENTRYPOINT of its stage)"""
    entry = words(services[name].get("entrypoint"))
    build = services[name].get("build") or {}
    dockerfile = os.path.join(build.get("context", ""), build.get("dockerfile", "Dockerfile"))
    stage = None
    for line in open(dockerfile) if not entry else []:
        m = re.match(r"(?i)^FROM\s+\S+\s+AS\s+(\S+)", line)
        if m:
            stage = m.group(1)
        m = re.match(r"(?i)^ENTRYPOINT\s+(\[.*\])\s*$", line)
        if m and stage == build.get("target"):
            entry = json.loads(m.group(1))
    if not entry:
        err("%s: no entrypoint" % name)
    done()
    return entry


def traffic_file(name):
    """the repository file the traffic generator sharing `name`'s netns replays"""
    gen = owner_of(name)
    return image_source(gen, env_of(services[gen]).get("TRAFFIC_FILE", ""))


order = sorted(tap, key=lambda n: ({"collect": 0, "relay": 1, "capture": 2}[tap[n]], n))
for name in order:
    env = {}
    for k, v in ENV[name].items():
        base = k[len("TAPMESH_"):] if k.startswith("TAPMESH_") else k
        if base == "COLLECT_ENDPOINT":
            v = "tcp://127.0.0.1:%d" % data_port[name]
        elif base == "RELAY_ENDPOINT":
            v = ",".join("tcp://127.0.0.1:%d" % data_port[h] for h in next_hops[name])
        elif base == "METRICS_ADDRPORT":
            v = "127.0.0.1:%d" % metrics_port[name]
        elif base == "DEVICE":
            # standard input, fed by the test once every service is healthy
            base, v = "READ_FILE", "-"
        elif v.startswith("/"):
            v = ",".join(host_path(name, x) or x for x in v.split(","))
        env[base] = v
    for kind, src, tgt, ro in mounts_of(services[name]):
        if kind == "volume":
            os.makedirs(os.path.join(work, "vol", src), 0o750, exist_ok=True)
    with open(os.path.join(work, "live", name + ".env"), "w") as f:
        for k, v in sorted(env.items()):
            f.write("%s=%s\n" % (k, v))
    replayed = traffic_file(name) if tap[name] == "capture" else "-"
    print(name, tap[name], os.path.join(work, "live", name + ".env"), replayed)

# ---- each edge: the agent in its generator's network namespace, as the container runs it --
os.makedirs(os.path.join(work, "edge"))
for name in sorted(n for n in tap if tap[n] == "capture"):
    gen = owner_of(name)
    svc, gsvc = services[name], services[gen]
    base = os.path.join(work, "edge", name)
    env = {k: v for k, v in ENV[name].items() if not k.startswith("CURVE_")}
    env.update({"RELAY_ENDPOINT": "tcp://127.0.0.1:5710", "METRICS_ADDRPORT": "127.0.0.1:9710",
                "DLQ_DIR": base + "-dlq"})
    genv = env_of(gsvc)
    entry = image_entrypoint(gen)
    genv.update({"TRAFFIC_FILE": traffic_file(name), "TRAFFIC_LOOPS": "1", "TRAFFIC_PPS": "2000",
                 "TRAFFIC_PAUSE_S": "0"})
    nets = networks_of(gen)
    opts = (cfg.get("networks") or {}).get(sorted(nets)[0]) or {}
    mtu = (opts.get("driver_opts") or {}).get("com.docker.network.driver.mtu", "1500")
    nnp = any(o.startswith("no-new-privileges") for o in svc.get("security_opt") or [])
    bounding = "-all" + "".join(",+" + c.lower().replace("cap_", "") for c in svc.get("cap_add") or [])
    for suffix, e in (("env", env), ("traffic", genv)):
        with open(base + "." + suffix, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in sorted(e.items())))
    with open(base + ".sh", "w") as f:
        f.write("bounding=%s\nnnp=%d\nmtu=%s\ntraffic_sh=%s\ninput=%s\n" % (
            shlex.quote(bounding), nnp, shlex.quote(str(mtu)),
            shlex.quote(image_source(gen, entry[-1])), shlex.quote(traffic_file(name))))
PY
log "compose config and the static checks pass; the keys are laid out as the services read them"

# ---- the lab's tapmesh services on loopback ---------------------------------------------
# Each agent reads what its traffic generator replays from a FIFO, so that
# it is still running when the healthcheck asks; this shell holds the
# FIFOs' writing ends (opened once every process is started, so that no
# other process inherits them) and feeds them afterwards.
declare -A feed=()
while read -r name program envfile input; do
    mapfile -t envs <"$envfile"
    if [ "$program" = capture ]; then
        mkfifo "$WORK/$name.fifo"
        IN_FROM=$WORK/$name.fifo start "$name" "${envs[@]}" -- "$BIN/$program/tapmesh-$program"
    else
        start "$name" "${envs[@]}" -- "$BIN/$program/tapmesh-$program"
    fi
done <"$WORK/plan.txt"
while read -r name program envfile input; do
    [ "$program" = capture ] || continue
    exec {fd}>"$WORK/$name.fifo"
    feed[$name]=$fd
done <"$WORK/plan.txt"
while read -r name program envfile input; do
    m=$(sed -n 's/^METRICS_ADDRPORT=//p' "$envfile")
    end=$((SECONDS + 10))
    until curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:${m##*:}/metrics" 2>/dev/null; do
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            wait_exit "$name" 1
            fail "$name exited $RC at start: $(tail -n 2 "$WORK/$name.log")"
        fi
        [ $SECONDS -lt $end ] || fail "$name: nothing answers /metrics on ${m##*:}"
        sleep 0.05
    done
    out=$(env -i METRICS_ADDRPORT="$m" bash "$root/docker/healthcheck.sh") ||
        fail "$name: tapmesh-healthcheck: $out"
done <"$WORK/plan.txt"
log "the healthcheck finds all five services healthy"
for name in "${!feed[@]}"; do
    fd=${feed[$name]}
    while read -r n program envfile input; do
        [ "$n" != "$name" ] || cat "$input" >&"$fd"
    done <"$WORK/plan.txt"
    exec {fd}>&-
done
for name in "${!feed[@]}"; do
    expect_exit "$name" 60 0
done
# every packet went through both relays, and CURVE refused nobody
total=0
while read -r name program envfile input; do
    [ "$program" != capture ] || total=$((total + $(capinfos -c -M "$input" | awk '/Number of packets/ {print $NF}')))
done <"$WORK/plan.txt"
while read -r name program envfile input; do
    m=$(sed -n 's/^METRICS_ADDRPORT=//p' "$envfile")
    [ "$program" != relay ] || wait_metric "${m##*:}" tapmesh_relay_packets_in_total "$total" 10
    [ "$program" = capture ] ||
        ! metrics "${m##*:}" | grep -E "^tapmesh_${program}_auth_failures_total" | grep -v ' 0$' ||
        fail "$name refused connections or messages"
done <"$WORK/plan.txt"
stop collect
[ "$RC" = 0 ] || fail "collect exited $RC"
for name in $(cut -d' ' -f1 "$WORK/plan.txt"); do
    ! grep -E 'is no setting|did you mean|plaintext' "$WORK/$name.log" ||
        fail "$name warned about its settings or plaintext"
done

outdir=$(sed -n 's/^OUTPUT=//p' "$WORK/live/collect.env")
outdir=$(dirname "$outdir")
files=("$outdir"/*.pcapng)
[ -e "${files[0]}" ] || fail "collect wrote no pcapng file in $outdir"
while read -r name program envfile input; do
    [ "$program" = capture ] || continue
    node=$(sed -n 's/^NODE_ID=//p' "$envfile")
    rm -f "$WORK/$name.pcapng"
    for f in "${files[@]}"; do
        tshark -r "$f" -Y "frame.interface_name == \"$node/stdin\"" \
            -w "$WORK/$name.part.pcapng" 2>/dev/null || fail "tshark -r $f"
        if [ -e "$WORK/$name.pcapng" ]; then
            mergecap -a -w "$WORK/$name.cat.pcapng" "$WORK/$name.pcapng" "$WORK/$name.part.pcapng"
            mv "$WORK/$name.cat.pcapng" "$WORK/$name.pcapng"
        else
            mv "$WORK/$name.part.pcapng" "$WORK/$name.pcapng"
        fi
    done
    same_packets "$input" "$WORK/$name.pcapng"
    log "$name ($node): $(capinfos -c -M "$WORK/$name.pcapng" | awk '/Number of packets/ {print $NF}') packets, byte for byte"
done <"$WORK/plan.txt"

# ---- each edge for real: the generator and the agent in one network namespace ----------
# As the lab runs them: tcpreplay (docker/traffic.sh, one round) sends the
# sample on eth0 (the edge network's MTU); the agent captures on that eth0
# with the lab's FILTER, as a user other than root, its CAP_NET_RAW a file
# capability granted through the container's bounding set (cap_drop ALL,
# cap_add as the service says) and no no-new-privileges. What reaches the
# collector is the sample, byte for byte: the replay, not the namespace's
# own chatter (IPv6 neighbour discovery). Without NET_RAW in the bounding
# set the program does not even start; with no-new-privileges on an engine
# that empties the permitted set before exec (Docker before moby#45511) it
# cannot open the interface: the two mistakes the static checks refuse.
if [ "$(id -u)" != 0 ]; then
    log "SKIP the edges in network namespaces: they need root"
    log "ok"
    exit 0
fi
for t in setcap setpriv tcpreplay ip; do
    command -v "$t" >/dev/null || {
        log "SKIP the edges in network namespaces: $t is not installed"
        log "ok"
        exit 0
    }
done
mkdir -m 0755 "$WORK/bin"
cp "$BIN/capture/tapmesh-capture" "$WORK/bin/"
setcap cap_net_raw+ep "$WORK/bin/tapmesh-capture" || fail "setcap"
as_user=(setpriv --inh-caps -all --reuid nobody --regid "$(id -g nobody)" --clear-groups)
for edge in "$WORK"/edge/*.sh; do
    name=$(basename "$edge" .sh)
    . "$edge"
    ns=tapmesh-lab-$name-$$
    ip netns add "$ns" || fail "cannot create a network namespace"
    at_exit "ip netns del $ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 mtu "$mtu" type veth peer name peer0 mtu "$mtu"
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set peer0 up
    mkdir -m 0750 "$WORK/edge/$name-dlq"
    chown nobody "$WORK/edge/$name-dlq"
    mapfile -t envs <"$WORK/edge/$name.env"
    nnp_opt=()
    [ "$nnp" = 0 ] || nnp_opt=(--no-new-privs)

    rc=0
    out=$(ip netns exec "$ns" "${as_user[@]}" --bounding-set -all "$WORK/bin/tapmesh-capture" --version 2>&1) || rc=$?
    [ "$rc" = 126 ] && [[ "$out" == *"Operation not permitted"* ]] ||
        fail "$name: started without NET_RAW in its bounding set ($rc: $out)"
    # an engine that empties the permitted set before exec (Docker before
    # moby#45511): here an exec in between, as nobody, does that
    rc=0
    out=$(ip netns exec "$ns" "${as_user[@]}" --bounding-set "$bounding" --no-new-privs \
        env "${envs[@]}" METRICS_ADDRPORT= "$WORK/bin/tapmesh-capture" 2>&1) || rc=$?
    [ "$rc" = 2 ] && [[ "$out" == *"DEVICE=eth0"*"permission"* ]] ||
        fail "$name: opened its interface under no-new-privileges with nothing permitted before ($rc: $out)"

    start "$name-collect" COLLECT_ENDPOINT=tcp://127.0.0.1:5710 METRICS_ADDRPORT= \
        OUTPUT="$WORK/edge/$name.pcapng" -- ip netns exec "$ns" "$COLLECT"
    start "$name-live" "${envs[@]}" -- ip netns exec "$ns" "${as_user[@]}" --bounding-set "$bounding" \
        "${nnp_opt[@]}" "$WORK/bin/tapmesh-capture"
    end=$((SECONDS + 10))
    until grep -q "running as uid $(id -u nobody) without capabilities" "$WORK/$name-live.log"; do
        [ $SECONDS -lt $end ] || fail "$name did not start as nobody: $(tail -3 "$WORK/$name-live.log")"
        sleep 0.05
    done
    grep -Eq '^CapEff:[[:space:]]+0+$' "/proc/${PIDS[$name-live]}/status" ||
        fail "$name kept capabilities: $(grep ^Cap "/proc/${PIDS[$name-live]}/status")"
    mapfile -t tenv <"$WORK/edge/$name.traffic"
    out=$(ip netns exec "$ns" env -i "${tenv[@]}" PATH=/usr/sbin:/usr/bin:/sbin:/bin sh "$traffic_sh" 2>&1) ||
        fail "$name: traffic: $out"
    n=$(capinfos -c -M "$input" | awk '/Number of packets/ {print $NF}')
    [[ "$out" == *"round 1: "*": $n packets sent, 0 failed"* ]] || fail "$name: traffic: $out"
    end=$((SECONDS + 10))
    until [ "$(ip netns exec "$ns" curl -fsS --max-time 2 http://127.0.0.1:9710/metrics 2>/dev/null |
        awk '$1 == "tapmesh_capture_packets_total" {print $2}')" -ge "$n" ] 2>/dev/null; do
        [ $SECONDS -lt $end ] || fail "$name did not capture the $n packets replayed"
        sleep 0.1
    done
    stop "$name-live"
    [ "$RC" = 0 ] || fail "$name exited $RC"
    stop "$name-collect"
    [ "$RC" = 0 ] || fail "$name's collector exited $RC"
    same_packets --ignore-ts "$input" "$WORK/edge/$name.pcapng"
    log "$name: $n packets replayed on its generator's eth0 captured as nobody with NET_RAW, byte for byte"
done
log "ok"
