#!/usr/bin/env bash
# The Kubernetes manifests of deploy/kubernetes, without a cluster. Every
# YAML file parses. The certificates are made with make-keys.sh and the
# built tapmesh-keygen, then the base and the scale-out overlay are
# rendered (`kubectl kustomize` where kubectl is installed, otherwise a
# renderer here that knows the few kustomize fields the manifests use) and
# checked as the API server and the kubelet would need them: apiVersion,
# kind, metadata.name; selectors that match their pods; containers with an
# image; every volume, mount, ConfigMap, Secret and key that is referred
# to exists; Services reach a container port. And as tapmesh needs them:
# every environment variable (env and envFrom) is a setting of the program
# the container runs (its --help); the Prometheus annotations name the
# port the program serves /metrics on; the capture agent runs on the
# node's network, as NODE_ID the node's name, with NET_RAW its only
# capability; every CurveZMQ file resolves through the mounts to a
# certificate, each next hop's public key is the one its secret
# certificate holds, and each receiver's allow-list lets its senders in;
# the relays' RELAY_ENDPOINT names every collector replica once, by its
# stable name, and splits by flow when there are several. Then each
# variant's pods run here as processes (collectors, a relay, an agent
# reading a sample instead of DEVICE) with the rendered settings and
# files, endpoints moved to loopback: every packet arrives once, and each
# of the scale-out collectors writes a share.
. "$(dirname "$0")/lib.sh"
need python3
python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is not installed"

src=$root/deploy/kubernetes
[ -d "$src/base" ] || fail "no deploy/kubernetes/base"
# a copy, so that the certificates made here never land in the tree
cp -r "$src" "$WORK/k8s"
rm -f "$WORK/k8s/base/keys/"*capture* "$WORK/k8s/base/keys/"*relay* "$WORK/k8s/base/keys/"*collect*
KEYGEN=$BIN/keygen/tapmesh-keygen "$WORK/k8s/make-keys.sh" >"$WORK/make-keys.log" 2>&1 ||
    fail "make-keys.sh: $(cat "$WORK/make-keys.log")"
rc=0
KEYGEN=$BIN/keygen/tapmesh-keygen "$WORK/k8s/make-keys.sh" >"$WORK/make-keys-again.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "make-keys.sh made certificates over existing ones"

# kubectl with kustomize 4 or later (the fields used: labels, replicas,
# envs); K8S_RENDERER=builtin tries the renderer here where it is installed
renderer=${K8S_RENDERER:-builtin}
if [ -z "${K8S_RENDERER:-}" ] && command -v kubectl >/dev/null; then
    kustomize=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')
    if [ "${kustomize:-0}" -ge 4 ]; then
        renderer=kubectl
    else
        log "kubectl's kustomize is older than v4: the renderer here is used"
    fi
fi
for p in capture relay collect; do
    "$BIN/$p/tapmesh-$p" --help >"$WORK/help-$p.txt" || fail "tapmesh-$p --help"
done
log "rendering with $renderer"
# loopback ports for the pods run below: 2 per pod, at most 5 pods a variant
K8S_PORTS=
for _ in $(seq 1 20); do
    pick_port
    K8S_PORTS="$K8S_PORTS $PORT"
done
"$TOOLS/gen-sample" "$WORK/in.pcap" 2000 ether 77
K8S_PORTS=$K8S_PORTS K8S_SAMPLE=$WORK/in.pcap \
python3 - "$WORK/k8s" "$WORK" "$renderer" <<'EOF' || fail "the manifests do not hold together (above)"
import base64, fnmatch, glob, os, re, subprocess, sys
import yaml

tree, work, renderer = sys.argv[1:]
errors = []


def err(where, what):
    errors.append(f"{where}: {what}")


# ---- every YAML file parses -------------------------------------------------
for path in sorted(glob.glob(os.path.join(tree, "**", "*.yaml"), recursive=True)):
    try:
        list(yaml.safe_load_all(open(path)))
    except yaml.YAMLError as e:
        err(os.path.relpath(path, tree), f"does not parse: {e}")


# ---- rendering --------------------------------------------------------------
def env_file(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        out[k] = v
    return out


def builtin_render(d):
    """The kustomize fields these manifests use, without name hashes."""
    k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
    docs = []
    for r in k.get("resources", []):
        p = os.path.join(d, r)
        docs += builtin_render(p) if os.path.isdir(p) else [x for x in yaml.safe_load_all(open(p)) if x]
    byname = {(x["kind"], x["metadata"]["name"]): x for x in docs}
    for g in k.get("configMapGenerator", []):
        data = {}
        for e in g.get("envs", []):
            data.update(env_file(os.path.join(d, e)))
        for lit in g.get("literals", []):
            a, _, b = lit.partition("=")
            data[a] = b
        if g.get("behavior") == "merge":
            byname[("ConfigMap", g["name"])]["data"].update(data)
        else:
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]}, "data": data}
            docs.append(cm)
            byname[("ConfigMap", g["name"])] = cm
    for g in k.get("secretGenerator", []):
        data = {}
        for f in g.get("files", []):
            key, _, path = f.rpartition("=")
            key = key or os.path.basename(path)
            data[key] = base64.b64encode(open(os.path.join(d, path), "rb").read()).decode()
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": g["name"]}, "data": data})
    for r in k.get("replicas", []):
        for x in docs:
            if x["metadata"]["name"] == r["name"] and "replicas" in x.get("spec", {}):
                x["spec"]["replicas"] = r["count"]
    for x in docs:
        for lab in k.get("labels", []):
            x["metadata"].setdefault("labels", {}).update(lab["pairs"])
        if "namespace" in k and x["kind"] != "Namespace":
            x["metadata"]["namespace"] = k["namespace"]
        for img in k.get("images", []):
            spec = x.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                if c.get("image") == img["name"]:
                    c["image"] = f"{img.get('newName', img['name'])}:{img.get('newTag', 'latest')}"
    return docs


def render(d):
    if renderer == "kubectl":
        out = subprocess.run(["kubectl", "kustomize", d], capture_output=True, text=True)
        if out.returncode != 0:
            err(os.path.relpath(d, tree), f"kubectl kustomize: {out.stderr.strip()}")
            return []
        return [x for x in yaml.safe_load_all(out.stdout) if x]
    return builtin_render(d)


# ---- the programs' settings -------------------------------------------------
settings, metrics_port = {}, {}
for prog in ("capture", "relay", "collect"):
    text = open(os.path.join(work, f"help-{prog}.txt")).read()
    settings["tapmesh-" + prog] = set(re.findall(r"^  ([A-Z][A-Z0-9_]*), --", text, re.M))
    m = re.search(r"^  METRICS_ADDRPORT,.*?default: \S*:(\d+)$", text, re.M | re.S)
    metrics_port["tapmesh-" + prog] = int(m.group(1)) if m else None


# ---- certificates (zcert text) ----------------------------------------------
def cert(text):
    c = {}
    for key in ("public-key", "secret-key", "node-id", "role"):
        m = re.search(r'^\s+%s = "([^"]*)"' % key, text, re.M)
        c[key] = m.group(1) if m else None
    return c


# ---- checks -----------------------------------------------------------------
API = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
       "DaemonSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
FIELD_PATHS = {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.podIP"}
SAMPLE_NODE = "worker-1"


def check(name, docs):
    if not docs:
        err(name, "renders nothing")
        return
    objs = {}
    for i, x in enumerate(docs):
        where = f"{name}: document {i}"
        if not isinstance(x, dict) or not all(k in x for k in ("apiVersion", "kind", "metadata")):
            err(where, "no apiVersion, kind or metadata")
            continue
        kind, md = x["kind"], x["metadata"]
        n = md.get("name") if isinstance(md, dict) else None
        if not isinstance(n, str) or not DNS_SUBDOMAIN.match(n) or len(n) > 253:
            err(where, f"metadata.name {n!r} is no DNS name")
            continue
        where = f"{name}: {kind}/{n}"
        if API.get(kind) != x["apiVersion"]:
            err(where, f"apiVersion {x['apiVersion']} (expected {API.get(kind, 'a known kind')})")
        if kind == "Service" and not DNS_LABEL.match(n):
            err(where, "a Service name must be a DNS label")
        if kind != "Namespace" and md.get("namespace") != "tapmesh":
            err(where, f"namespace {md.get('namespace')!r}, not tapmesh")
        if kind == "ConfigMap":
            for k, v in (x.get("data") or {}).items():
                if not isinstance(v, str):
                    err(where, f"data {k} is not a string")
        if kind == "Secret":
            try:
                x["data"] = {k: base64.b64decode("".join(v.split()), validate=True).decode() for k, v in (x.get("data") or {}).items()}
            except Exception as e:
                err(where, f"data is not base64: {e}")
        objs[(kind, n)] = x

    def get(kind, n):
        return objs.get((kind, n))

    workloads = [x for (k, _), x in objs.items() if k in ("DaemonSet", "Deployment", "StatefulSet")]
    if sorted(x["kind"] for x in workloads) != ["DaemonSet", "Deployment", "StatefulSet"]:
        err(name, "expected a DaemonSet (capture), a Deployment (relay) and a StatefulSet (collect)")
    by_program = {}

    for w in workloads:
        where = f"{name}: {w['kind']}/{w['metadata']['name']}"
        spec = w.get("spec", {})
        tpl = spec.get("template", {})
        labels = tpl.get("metadata", {}).get("labels", {})
        sel = spec.get("selector", {}).get("matchLabels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            err(where, f"selector {sel} does not match the pod labels {labels}")
        pod = tpl.get("spec", {})
        containers = pod.get("containers") or []
        inits = pod.get("initContainers") or []
        if not containers:
            err(where, "no containers")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for c in claims:
            if c in volumes:
                err(where, f"volume {c} both a volume and a claim template")
        for vn, v in volumes.items():
            if "secret" in v:
                s = get("Secret", v["secret"].get("secretName"))
                if not s:
                    err(where, f"volume {vn}: no Secret {v['secret'].get('secretName')}")
                else:
                    for it in v["secret"].get("items", []):
                        if it["key"] not in s.get("data", {}):
                            err(where, f"volume {vn}: Secret {s['metadata']['name']} has no key {it['key']}")
            elif "configMap" in v:
                if not get("ConfigMap", v["configMap"].get("name")):
                    err(where, f"volume {vn}: no ConfigMap {v['configMap'].get('name')}")
            elif not ({"emptyDir", "hostPath", "persistentVolumeClaim"} & set(v)):
                err(where, f"volume {vn}: a kind of volume not checked here")
        seen = set()
        for c in containers + inits:
            cw = f"{where} container {c.get('name')}"
            if not isinstance(c.get("name"), str) or not DNS_LABEL.match(c["name"]) or c["name"] in seen:
                err(cw, "no name, not a DNS label, or twice")
            seen.add(c.get("name"))
            if not c.get("image"):
                err(cw, "no image")
            for m in c.get("volumeMounts", []):
                if m.get("name") not in volumes and m.get("name") not in claims:
                    err(cw, f"mounts {m.get('name')}, which is no volume")
                if not str(m.get("mountPath", "")).startswith("/"):
                    err(cw, f"mountPath {m.get('mountPath')!r} is not absolute")
            ports = {}
            for p in c.get("ports", []):
                if not isinstance(p.get("containerPort"), int) or not 0 < p["containerPort"] < 65536:
                    err(cw, f"containerPort {p.get('containerPort')!r}")
                if "name" in p:
                    if len(p["name"]) > 15 or not DNS_LABEL.match(p["name"]):
                        err(cw, f"port name {p['name']!r}")
                    ports[p["name"]] = p["containerPort"]
                ports[p.get("containerPort")] = p.get("containerPort")
            c["_ports"] = ports
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                hg = c.get(probe, {}).get("httpGet")
                if hg and hg.get("port") not in ports:
                    err(cw, f"{probe} port {hg.get('port')} is no port of the container")
            env = {}
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                cm = get("ConfigMap", ref)
                if not cm:
                    err(cw, f"envFrom: no ConfigMap {ref}")
                else:
                    env.update(cm.get("data") or {})
            for e in c.get("env", []):
                if ("value" in e) == ("valueFrom" in e):
                    err(cw, f"env {e.get('name')}: value or valueFrom, one of them")
                vf = e.get("valueFrom", {})
                if "fieldRef" in vf:
                    fp = vf["fieldRef"].get("fieldPath")
                    if fp not in FIELD_PATHS:
                        err(cw, f"env {e['name']}: fieldPath {fp}")
                    env[e["name"]] = {"spec.nodeName": SAMPLE_NODE, "metadata.name": "pod-0"}.get(fp, "x")
                    c.setdefault("_fieldref", {})[e["name"]] = fp
                elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
                    kind = "ConfigMap" if "configMapKeyRef" in vf else "Secret"
                    ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
                    o = get(kind, ref.get("name"))
                    if not o or ref.get("key") not in (o.get("data") or {}):
                        err(cw, f"env {e['name']}: no {kind} {ref.get('name')} with key {ref.get('key')}")
                    env[e["name"]] = (o or {}).get("data", {}).get(ref.get("key"), "")
                else:
                    env[e["name"]] = str(e.get("value", ""))
            c["_env"] = env
        # the tapmesh program of the workload: its settings, its metrics
        main = [c for c in containers if os.path.basename((c.get("command") or [""])[0]) in settings]
        if len(main) != 1:
            err(where, "no container (or several) runs a tapmesh program by command")
            continue
        c = main[0]
        prog = os.path.basename(c["command"][0])
        by_program[prog] = (w, c)
        for k in c["_env"]:
            plain = k[len("TAPMESH_"):] if k.startswith("TAPMESH_") else k
            if plain not in settings[prog]:
                err(where, f"{k} is no setting of {prog}")
        ann = tpl.get("metadata", {}).get("annotations", {})
        addr = c["_env"].get("METRICS_ADDRPORT")
        port = int(addr.rsplit(":", 1)[1]) if addr else metrics_port[prog]
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
            err(where, "prometheus.io/scrape \"true\" and prometheus.io/path /metrics wanted")
        if ann.get("prometheus.io/port") != str(port):
            err(where, f"prometheus.io/port {ann.get('prometheus.io/port')!r}, but {prog} serves /metrics on {port}")
        if port not in c["_ports"]:
            err(where, f"the metrics port {port} is no containerPort")
        sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
        if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
            err(where, f"{prog} must run as a user other than root (runAsNonRoot, runAsUser)")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            err(where, f"{prog}: capabilities drop ALL wanted")
        if sc.get("readOnlyRootFilesystem") is not True:
            err(where, f"{prog}: readOnlyRootFilesystem wanted")
        if "NODE_ID" not in c.get("_fieldref", {}):
            err(where, "NODE_ID from the downward API wanted")

    # Services: a selector that picks pods, ports that reach them
    for (kind, n), s in objs.items():
        if kind != "Service":
            continue
        where = f"{name}: Service/{n}"
        sel = s.get("spec", {}).get("selector", {})
        picked = [w for w in workloads if sel and all(
            w["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if len(picked) != 1:
            err(where, f"its selector picks {len(picked)} workloads, not one")
            continue
        cs = picked[0]["spec"]["template"]["spec"]["containers"]
        for p in s["spec"].get("ports", []):
            t = p.get("targetPort", p.get("port"))
            if not any(t in c["_ports"] for c in cs):
                err(where, f"targetPort {t} is no container port of {picked[0]['metadata']['name']}")
    for w in workloads:
        if w["kind"] == "StatefulSet":
            svc = get("Service", w["spec"].get("serviceName"))
            if not svc or svc["spec"].get("clusterIP") != "None":
                err(f"{name}: StatefulSet/{w['metadata']['name']}", "serviceName must be a headless Service")

    if set(by_program) != set(settings):
        err(name, f"programs run: {sorted(by_program)}")
        return
    cw, cc = by_program["tapmesh-capture"]
    rw, rc = by_program["tapmesh-relay"]
    kw, kc = by_program["tapmesh-collect"]

    # the capture agent: the node's network and name, NET_RAW and nothing else
    pod = cw["spec"]["template"]["spec"]
    where = f"{name}: capture"
    if cw["kind"] != "DaemonSet" or pod.get("hostNetwork") is not True:
        err(where, "a DaemonSet on the node's network (hostNetwork) wanted")
    if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
        err(where, "dnsPolicy ClusterFirstWithHostNet wanted (the relay's Service by name)")
    if cc.get("_fieldref", {}).get("NODE_ID") != "spec.nodeName":
        err(where, "NODE_ID must be the node's name (spec.nodeName)")
    caps = cc.get("securityContext", {}).get("capabilities", {})
    if caps.get("add") != ["NET_RAW"]:
        err(where, f"capabilities add {caps.get('add')}, not exactly NET_RAW")
    if not cc["_env"].get("DEVICE"):
        err(where, "no DEVICE")
    if kw["kind"] != "StatefulSet" or not kw["spec"].get("volumeClaimTemplates"):
        err(f"{name}: collect", "a StatefulSet with a volumeClaimTemplate wanted")
    for k in ("OUTPUT", "STATE_DIR"):
        v = kc["_env"].get(k, "")
        mounts = [m for m in kc.get("volumeMounts", [])
                  if m["name"] in {c["metadata"]["name"] for c in kw["spec"].get("volumeClaimTemplates", [])}]
        if not any(v.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts):
            err(f"{name}: collect", f"{k}={v!r} is not on the claimed volume")
    if "%i" not in kc["_env"].get("OUTPUT", "") or not (kc["_env"].get("ROTATE_MB", "0") != "0" or kc["_env"].get("ROTATE_S", "0") != "0"):
        err(f"{name}: collect", "a rotating OUTPUT (a pattern with %i, ROTATE_MB or ROTATE_S) wanted")

    # files through the mounts: a Secret's key, or an init container's copy
    def resolve(w, c, path):
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for m in sorted(c.get("volumeMounts", []), key=lambda m: -len(m["mountPath"])):
            mp = m["mountPath"].rstrip("/")
            if path != mp and not path.startswith(mp + "/"):
                continue
            rel = path[len(mp) + 1:]
            v = volumes.get(m["name"], {})
            if "secret" in v:
                data = get("Secret", v["secret"]["secretName"]).get("data", {})
                items = {i["path"]: i["key"] for i in v["secret"].get("items", [])} or {k: k for k in data}
                if rel == "":
                    return {p: data[k] for p, k in items.items()}
                return data.get(items.get(rel, ""))
            if "emptyDir" in v:
                # an init container copies the file in: `install ... SRC DST`
                for ic in pod.get("initContainers", []):
                    im = [x for x in ic.get("volumeMounts", []) if x["name"] == m["name"]]
                    if not im:
                        continue
                    dst = im[0]["mountPath"].rstrip("/") + "/" + rel
                    words = " ".join(ic.get("command", []) + ic.get("args", [])).split()
                    if dst in words and words.index(dst) > 0:
                        return resolve(w, ic, words[words.index(dst) - 1])
            return None
        return None

    certs = {}
    for prog, (w, c) in by_program.items():
        where = f"{name}: {prog}"
        path = c["_env"].get("CURVE_SECRET_KEY_FILE")
        text = resolve(w, c, path) if path else None
        if not isinstance(text, str):
            err(where, f"CURVE_SECRET_KEY_FILE={path}: no such file in the pod")
            continue
        certs[prog] = cert(text)
        if not certs[prog]["secret-key"]:
            err(where, f"CURVE_SECRET_KEY_FILE={path}: no secret key in it")
    if len(certs) != 3:
        return
    for sender, receiver in (("tapmesh-capture", "tapmesh-relay"), ("tapmesh-relay", "tapmesh-collect")):
        w, c = by_program[sender]
        where = f"{name}: {sender}"
        path = c["_env"].get("CURVE_SERVER_PUBLIC_KEY", "")
        text = resolve(w, c, path) if path.startswith("/") else None
        if not isinstance(text, str) or cert(text)["public-key"] != certs[receiver]["public-key"]:
            err(where, f"CURVE_SERVER_PUBLIC_KEY={path} is not {receiver}'s public certificate")
        w2, c2 = by_program[receiver]
        path = c2["_env"].get("CURVE_ALLOWED_KEYS_DIR", "")
        files = resolve(w2, c2, path.rstrip("/")) if path else None
        if not isinstance(files, dict):
            err(f"{name}: {receiver}", f"CURVE_ALLOWED_KEYS_DIR={path}: no directory of certificates")
            continue
        allowed = [cert(t) for f, t in files.items() if not f.endswith("_secret")]
        if any(cert(t)["secret-key"] for t in files.values()):
            err(f"{name}: {receiver}", "a secret certificate in the allow-list")
        mine = [a for a in allowed if a["public-key"] == certs[sender]["public-key"]]
        if not mine:
            err(f"{name}: {receiver}", f"CURVE_ALLOWED_KEYS_DIR does not let {sender} in")
        elif sender == "tapmesh-relay" and mine[0]["role"] != "relay":
            err(f"{name}: {receiver}", "the relay's certificate is not role = relay")
        elif sender == "tapmesh-capture" and not any(
                fnmatch.fnmatchcase(SAMPLE_NODE, p) for p in (mine[0]["node-id"] or "").split(",")):
            err(f"{name}: {receiver}", f"the agents' certificate does not speak for node {SAMPLE_NODE}")

    # where the agents send: the relays' Service and port
    ep = cc["_env"].get("RELAY_ENDPOINT", "")
    m = re.fullmatch(r"tcp://([a-z0-9-]+):(\d+)", ep)
    svc = get("Service", m.group(1)) if m else None
    if not svc or int(m.group(2)) not in [p["port"] for p in svc["spec"]["ports"]]:
        err(f"{name}: capture", f"RELAY_ENDPOINT={ep} is no Service port")
    elif not all(svc["spec"]["selector"].get(k) == v for k, v in rw["spec"]["selector"]["matchLabels"].items()):
        err(f"{name}: capture", f"RELAY_ENDPOINT={ep} does not reach the relays")
    # where the relays send: every collector replica once, by its stable name
    reps = kw["spec"].get("replicas", 1)
    svc = kw["spec"].get("serviceName")
    port = int(kc["_env"].get("COLLECT_ENDPOINT", "tcp://*:5710").rsplit(":", 1)[1])
    want = [f"tcp://{kw['metadata']['name']}-{i}.{svc}:{port}" for i in range(reps)]
    got = rc["_env"].get("RELAY_ENDPOINT", "").split(",")
    if sorted(got) != sorted(want):
        err(f"{name}: relay", f"RELAY_ENDPOINT={','.join(got)}, but the collectors are {','.join(want)}")
    fanout = rc["_env"].get("FANOUT", "failover")
    if reps > 1 and fanout != "flowhash":
        err(f"{name}: relay", f"{reps} collectors, FANOUT={fanout}: flowhash wanted (each collector its share)")
    print(f"{name}: {len(objs)} objects; {reps} collector(s), FANOUT={fanout}")
    return {"objs": objs, "by_program": by_program, "resolve": resolve}


# ---- a run plan: the pods' programs on this host ---------------------------
# Each pod instance gets a directory per volume (Secrets written out, the
# init containers' `install` steps done), its environment with the mount
# paths moved there, endpoints and metrics on loopback ports, and the
# capture agent reading SAMPLE (not DEVICE): the plan the shell starts.
ports = iter(int(p) for p in os.environ["K8S_PORTS"].split())
sample = os.environ["K8S_SAMPLE"]


def plan(name, ctx):
    out = os.path.join(work, "run", name.replace("/", "-"))
    os.makedirs(out)
    by_program, objs = ctx["by_program"], ctx["objs"]
    insts = []  # (instance, workload, container)
    for prog in ("tapmesh-collect", "tapmesh-relay", "tapmesh-capture"):
        w, c = by_program[prog]
        n = w["spec"].get("replicas", 1) if w["kind"] == "StatefulSet" else 1
        insts += [(f"{w['metadata']['name']}-{i}", w, c) for i in range(n)]
    data_port = {inst: next(ports) for inst, _, _ in insts}

    def target(host):
        """The instance a DNS name reaches: a Service's first pod, or a
        StatefulSet pod by its stable name."""
        svc = objs.get(("Service", host))
        if svc:
            sel = svc["spec"]["selector"]
            for inst, w, _ in insts:
                if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()):
                    return inst
        m = re.fullmatch(r"([a-z0-9-]+-\d+)\.([a-z0-9-]+)", host)
        if m and m.group(1) in data_port:
            return m.group(1)
        err(name, f"{host}: no pod of this plan answers to that name")
        return insts[0][0]

    with open(os.path.join(out, "plan"), "w") as planf:
        for inst, w, c in insts:
            pod = w["spec"]["template"]["spec"]
            root = os.path.join(out, inst)
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            for v in list(vols) + [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]:
                os.makedirs(os.path.join(root, v))
                if "secret" in vols.get(v, {}):
                    data = objs[("Secret", vols[v]["secret"]["secretName"])]["data"]
                    items = {i["path"]: i["key"] for i in vols[v]["secret"].get("items", [])} or {k: k for k in data}
                    for path, key in items.items():
                        with open(os.path.join(root, v, path), "w") as f:
                            f.write(data[key])

            def host(cont, path):
                for m in sorted(cont.get("volumeMounts", []), key=lambda m: -len(m["mountPath"])):
                    mp = m["mountPath"].rstrip("/")
                    if path == mp or path.startswith(mp + "/"):
                        return os.path.join(root, m["name"]) + path[len(mp):]
                return None

            for ic in pod.get("initContainers", []):
                for step in " ".join(ic.get("command", []) + ic.get("args", [])).split("&&"):
                    words = step.split()
                    if words[:2] in (["sh", "-c"], ["bash", "-c"]):
                        words = words[2:]
                    if not words or words[0] != "install":
                        continue
                    mode = int(words[words.index("-m") + 1], 8) if "-m" in words else 0o755
                    if "-d" in words:
                        os.makedirs(host(ic, words[-1]), mode, exist_ok=True)
                    else:
                        with open(host(ic, words[-2])) as f:
                            text = f.read()
                        dst = host(ic, words[-1])
                        with open(dst, "w") as f:
                            f.write(text)
                        os.chmod(dst, mode)
            env = {}
            for k, v in c["_env"].items():
                h = host(c, v) if v.startswith("/") else None
                env[k] = h if h else v
            prog = os.path.basename(c["command"][0])
            fp = c.get("_fieldref", {})
            for k, path in fp.items():
                env[k] = SAMPLE_NODE if path == "spec.nodeName" else inst
            if "COLLECT_ENDPOINT" in env:
                env["COLLECT_ENDPOINT"] = f"tcp://127.0.0.1:{data_port[inst]}"
            if "RELAY_ENDPOINT" in env:
                eps = []
                for ep in env["RELAY_ENDPOINT"].split(","):
                    h, _, _ = ep[len("tcp://"):].rpartition(":")
                    eps.append(f"tcp://127.0.0.1:{data_port[target(h)]}")
                env["RELAY_ENDPOINT"] = ",".join(eps)
            metrics = next(ports)
            env["METRICS_ADDRPORT"] = f"127.0.0.1:{metrics}"
            if prog == "tapmesh-capture":
                env.pop("DEVICE", None)
                env["READ_FILE"] = sample
            with open(os.path.join(out, inst + ".env"), "w") as f:
                for k, v in sorted(env.items()):
                    if "\n" in v:
                        err(name, f"{inst}: {k} holds a newline")
                    f.write(f"{k}={v}\n")
            planf.write(f"{inst} {prog.split('-')[1]} {metrics}\n")


for overlay in ("base", "overlays/scale-out"):
    docs = render(os.path.join(tree, overlay))
    ctx = check(overlay, docs)
    sts = [x for x in docs if isinstance(x, dict) and x.get("kind") == "StatefulSet"]
    if overlay != "base" and sts and sts[0]["spec"].get("replicas", 1) < 2:
        err(overlay, "the scale-out overlay has fewer than two collectors")
    if ctx and not errors:
        plan(overlay, ctx)

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF

# The pods' programs for real, with the rendered settings and files:
# collector(s), one relay, one capture agent reading the sample file. Every
# packet that FILTER lets through arrives once, over CurveZMQ on both hops;
# with several collectors, each writes a share and together they hold all.
need tcpdump curl ss
filter=$(grep '^FILTER=' "$WORK/run/base/capture-0.env" | cut -d= -f2-)
tcpdump --time-stamp-precision=nano -r "$WORK/in.pcap" -w "$WORK/expected.pcap" "$filter" 2>/dev/null || fail "tcpdump -r with FILTER=$filter"
for variant in base overlays-scale-out; do
    dir=$WORK/run/$variant
    outputs=()
    while read -r inst prog mport; do
        mapfile -t envs <"$dir/$inst.env"
        start "$variant-$inst" "${envs[@]}" -- "$BIN/$prog/tapmesh-$prog"
        if [ "$prog" = capture ]; then
            expect_exit "$variant-$inst" 90 0
        else
            wait_listening "$mport" 15
        fi
        [ "$prog" = collect ] && outputs+=("$variant-$inst:$mport")
    done <"$dir/plan"
    files=()
    for o in "${outputs[@]}"; do
        name=${o%%:*}
        stop "$name"
        [ "$RC" = 0 ] || fail "$name exited $RC"
        mine=("$dir/${name#"$variant"-}/data/pcap/"*.pcapng)
        [ -e "${mine[0]}" ] || fail "$name wrote no file in its volume"
        n=$(cat "${mine[@]}" | tcpdump -nn -r - 2>/dev/null | wc -l)
        [ "$n" -gt 0 ] || fail "$name wrote no packet: no share of its own"
        files+=("${mine[@]}")
    done
    for name in "${!PIDS[@]}"; do
        stop "$name"
    done
    if [ "${#files[@]}" = 1 ]; then
        same_packets "$WORK/expected.pcap" "${files[0]}"
    else
        need mergecap
        mergecap -F nsecpcap -w "$WORK/$variant-merged.pcap" "${files[@]}" 2>/dev/null ||
            fail "mergecap ${files[*]}"
        same_packets "$WORK/expected.pcap" "$WORK/$variant-merged.pcap"
    fi
    log "$variant: ${#outputs[@]} collector(s) ran from the manifests; every packet once"
done
log "ok"
