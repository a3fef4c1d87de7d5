"""Offline checks of deploy/ (run by tests/cli/test_deploy_files.sh).

    check_deploy.py unit FILE        the systemd unit: parses, and has the hardening
    check_deploy.py k8s DIR          the Kubernetes manifests: kinds, apiVersions,
                                     required fields and the references between them
    check_deploy.py node-configs DIR OUT
                                     writes the node configs the ConfigMap holds to OUT/

No Kubernetes schema validator (kubeconform, kubeval) is packaged for Debian
12 and none can be fetched offline, so the "schema" here is the subset of
the API the manifests use, written down: what Kubernetes would refuse
(missing required fields, a selector that does not match the pod labels, a
volume mount without a volume, a bad name), plus what this deployment needs
(the Secret and ConfigMap each StatefulSet mounts exist and hold the keys it
reads, the readiness probe runs `cohortctl status`, nothing runs as root).
Prints one line per problem; exit status 1 when there is any.
"""

import os
import re
import sys

import yaml

PROBLEMS = []


def problem(where, text):
    PROBLEMS.append("%s: %s" % (where, text))


# ---- systemd ----

def parse_unit(path):
    """{section: {key: [values]}}; refuses what systemd would not parse."""
    sections, cur = {}, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line, no = lines[i].strip(), i + 1
        while line.endswith("\\") and i + 1 < len(lines):  # continuation
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)", line)
        if not m or cur is None:
            problem("%s:%d" % (path, no), "not a key=value line in a section: %r" % line)
            continue
        cur.setdefault(m.group(1), []).append(m.group(2))
    return sections


UNIT_WANT = {
    "Service": {
        "User": "cohort", "Group": "cohort",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "StateDirectory": "cohort",
        "ReadOnlyPaths": "/etc/cohort",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
    },
    "Install": {"WantedBy": "multi-user.target"},
}


def check_unit(path):
    u = parse_unit(path)
    for sec in ("Unit", "Service", "Install"):
        if sec not in u:
            problem(path, "no [%s] section" % sec)
    for sec, keys in UNIT_WANT.items():
        for k, v in keys.items():
            got = u.get(sec, {}).get(k)
            if not got:
                problem(path, "[%s] %s= missing (want %r)" % (sec, k, v))
            elif got[-1] != v:
                problem(path, "[%s] %s=%s, want %r" % (sec, k, got[-1], v))
    svc = u.get("Service", {})
    start = (svc.get("ExecStart") or [""])[-1].split()
    if not start or not start[0].endswith("/cohortd") or start[1:] != ["-c",
                                                                       "/etc/cohort/node.yaml"]:
        problem(path, "ExecStart=%s, want .../cohortd -c /etc/cohort/node.yaml" % " ".join(start))
    filters = svc.get("SystemCallFilter", [])
    if "@system-service" not in filters:
        problem(path, "SystemCallFilter=@system-service missing")
    if svc.get("AmbientCapabilities", ["x"])[-1] != "":
        problem(path, "AmbientCapabilities= must be empty")
    for k in ("DynamicUser",):
        if svc.get(k, ["no"])[-1] != "no":
            problem(path, "%s must not be set: the API socket's group is cohort's" % k)


# ---- Kubernetes ----

KINDS = {"Service": "v1", "ConfigMap": "v1", "Secret": "v1", "StatefulSet": "apps/v1"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def need(obj, where, *path):
    """obj[path...], reporting a problem (and returning None) when missing."""
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur or cur[p] is None:
            problem(where, "missing %s" % ".".join(path))
            return None
        cur = cur[p]
    return cur


def load_docs(directory):
    docs = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8") as f:
            try:
                for i, d in enumerate(yaml.safe_load_all(f)):
                    if d is not None:
                        docs.append(("%s#%d" % (name, i), d))
            except yaml.YAMLError as e:
                problem(path, "does not parse: %s" % e)
    return docs


def check_meta(where, d):
    kind, api = d.get("kind"), d.get("apiVersion")
    if kind not in KINDS:
        problem(where, "kind %r is not one this deployment uses (%s)" % (kind, ", ".join(KINDS)))
        return None
    if api != KINDS[kind]:
        problem(where, "%s has apiVersion %r, want %r" % (kind, api, KINDS[kind]))
    name = need(d, where, "metadata", "name")
    if name is not None and (not DNS1123.match(name) or len(name) > 253):
        problem(where, "metadata.name %r is not a DNS-1123 name" % name)
    if kind in ("Service", "StatefulSet") and name and not LABEL1123.match(name):
        problem(where, "%s name %r must be a DNS-1123 label" % (kind, name))
    for k, v in ((d.get("metadata") or {}).get("labels") or {}).items():
        if not isinstance(v, str):
            problem(where, "label %s must be a string" % k)
    return kind


def check_container(where, c, volumes, is_init):
    for f in ("name", "image"):
        need(c, where, f)
    if not isinstance(c.get("command", []), list) or not isinstance(c.get("args", []), list):
        problem(where, "command and args must be lists")
    for a in c.get("command", []) + c.get("args", []):
        if not isinstance(a, str):
            problem(where, "command/args item %r is not a string" % (a,))
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(where, "securityContext.allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(where, "securityContext.readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problem(where, "securityContext.capabilities.drop must hold ALL")
    for m in c.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            problem(where, "volumeMount %r has no volume" % m.get("name"))
        if not str(m.get("mountPath", "")).startswith("/"):
            problem(where, "volumeMount %r: mountPath must be absolute" % m.get("name"))
    ports = {}
    for p in c.get("ports") or []:
        if not isinstance(p.get("containerPort"), int) or not 0 < p["containerPort"] < 65536:
            problem(where, "containerPort %r" % p.get("containerPort"))
        if "name" in p:
            if not PORT_NAME.match(p["name"]) or len(p["name"]) > 15:
                problem(where, "port name %r" % p["name"])
            ports[p["name"]] = p.get("containerPort")
        if p.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            problem(where, "port protocol %r" % p.get("protocol"))
    if not is_init:
        probe = need(c, where, "readinessProbe", "exec", "command") or []
        if len(probe) < 2 or not probe[0].endswith("cohortctl") or probe[1] != "status":
            problem(where, "readinessProbe must run `cohortctl status`, runs %r" % probe)
    return ports


def check_k8s(directory):
    docs = load_docs(directory)
    by_kind = {}
    for where, d in docs:
        kind = check_meta(where, d)
        if kind:
            by_kind.setdefault(kind, []).append((where, d))
    for kind in KINDS:
        if kind not in by_kind:
            problem(directory, "no %s" % kind)

    configmaps = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for _, d in by_kind.get("Secret", [])}
    services = {d["metadata"]["name"]: d for _, d in by_kind.get("Service", [])}

    for where, d in by_kind.get("ConfigMap", []):
        for k, v in (d.get("data") or {}).items():
            if not CONFIG_KEY.match(k) or not isinstance(v, str):
                problem(where, "data key %r: bad name or not a string" % k)
    for where, d in by_kind.get("Secret", []):
        if d.get("type", "Opaque") != "Opaque":
            problem(where, "type %r, want Opaque" % d.get("type"))
        data = d.get("stringData") or {}
        if d.get("data"):
            problem(where, "a template holds no data: (base64) values, only stringData placeholders")
        for k in ("node.key", "node.crt"):
            if k not in data:
                problem(where, "stringData.%s missing" % k)
        for k, v in data.items():
            if "-----BEGIN" in str(v) or "REPLACE" not in str(v):
                problem(where, "stringData.%s must be a REPLACE placeholder, not key material" % k)
    for where, d in by_kind.get("Service", []):
        spec = need(d, where, "spec") or {}
        if spec.get("clusterIP") != "None":
            problem(where, "must be headless (clusterIP: None)")
        if not spec.get("selector"):
            problem(where, "no selector")
        for p in spec.get("ports") or []:
            if not isinstance(p.get("port"), int):
                problem(where, "port %r" % p.get("port"))

    members = set()
    for where, d in by_kind.get("StatefulSet", []):
        spec = need(d, where, "spec") or {}
        svc = need(spec, where, "serviceName")
        if svc and svc not in services:
            problem(where, "serviceName %r: no such Service" % svc)
        if spec.get("replicas") != 1:
            problem(where, "replicas must be 1: one pod per member name")
        sel = need(spec, where, "selector", "matchLabels") or {}
        tmpl = need(spec, where, "template") or {}
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            problem(where, "selector.matchLabels %r do not match the pod labels %r" % (sel, labels))
        if svc in services:
            ssel = services[svc]["spec"].get("selector") or {}
            if any(labels.get(k) != v for k, v in ssel.items()):
                problem(where, "the pods do not match Service %s's selector %r" % (svc, ssel))
        pod = need(tmpl, where, "spec") or {}
        psc = pod.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
            problem(where, "the pod must run as a non-root user")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problem(where, "seccompProfile RuntimeDefault missing")
        volumes = {}
        for v in pod.get("volumes") or []:
            volumes[v.get("name")] = v
        for c in spec.get("volumeClaimTemplates") or []:
            name = need(c, where, "metadata", "name")
            need(c, where, "spec", "resources", "requests", "storage")
            volumes[name] = {"pvc": True}
        for v in pod.get("volumes") or []:
            if "configMap" in v:
                cm = configmaps.get(v["configMap"].get("name"))
                if cm is None:
                    problem(where, "volume %s: no ConfigMap %r" % (v["name"],
                                                                   v["configMap"].get("name")))
            if "secret" in v:
                if v["secret"].get("secretName") not in secrets:
                    problem(where, "volume %s: no Secret %r" % (v["name"],
                                                                v["secret"].get("secretName")))
        mounts_of = {}
        for c in pod.get("initContainers") or []:
            check_container(where + " init " + str(c.get("name")), c, volumes, True)
        containers = need(pod, where, "containers") or []
        ports = {}
        for c in containers:
            ports.update(check_container(where + " " + str(c.get("name")), c, volumes, False))
            for m in c.get("volumeMounts") or []:
                mounts_of[m["mountPath"]] = m["name"]
        for s in services.values():
            for p in s["spec"].get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                if isinstance(tp, str) and tp not in ports:
                    problem(where, "Service port targets %r, which no container names" % tp)
        # the config file cohortd is given must be in the mounted ConfigMap,
        # and name the member this StatefulSet is for
        args = (containers[0].get("args") or []) if containers else []
        cfg = args[args.index("-c") + 1] if "-c" in args[:-1] else None
        if not cfg:
            problem(where, "cohortd is not given -c CONFIG")
            continue
        vol = volumes.get(mounts_of.get(os.path.dirname(cfg)), {})
        cm = configmaps.get((vol.get("configMap") or {}).get("name"))
        text = (cm or {}).get("data", {}).get(os.path.basename(cfg))
        if text is None:
            problem(where, "%s is not a key of a ConfigMap mounted at %s"
                    % (cfg, os.path.dirname(cfg)))
            continue
        node = yaml.safe_load(text)
        member = node.get("node", {}).get("name")
        members.add(member)
        for what, lab in (("it is", (d.get("metadata") or {}).get("labels") or {}),
                          ("its pods are", labels)):
            if lab.get("app.kubernetes.io/instance") != member:
                problem(where, "runs member %r but %s labelled %r"
                        % (member, what, lab.get("app.kubernetes.io/instance")))
        sname = [v for v in pod.get("volumes") or [] if "secret" in v]
        if not sname or sname[0]["secret"]["secretName"] != member + "-identity":
            problem(where, "must mount only its own Secret %s-identity" % member)
        state = node.get("node", {}).get("state_dir")
        if not volumes.get(mounts_of.get(state), {}).get("pvc"):
            problem(where, "node.state_dir %s is not the StatefulSet's volume" % state)
        for key in ("key", "cert"):
            p = node.get("identity", {}).get(key, "")
            if mounts_of.get(os.path.dirname(p)) is None:
                problem(where, "identity.%s %s is not on a mounted volume" % (key, p))
        trust = node.get("trust", {})
        roster = trust.get("roster", "")
        for p in [roster, trust.get("roster_signature") or roster + ".sig"] + list(
                trust.get("ca", [])):
            if os.path.dirname(p) != os.path.dirname(cfg) or \
                    os.path.basename(p) not in cm.get("data", {}):
                problem(where, "%s is not in the ConfigMap beside %s" % (p, cfg))
        adv = node.get("listen", {}).get("advertise", [])
        want = "tcp://%s-0.%s:%s" % (d["metadata"]["name"], svc,
                                     node.get("listen", {}).get("port", 7700))
        if adv != [want]:
            problem(where, "listen.advertise %r, want [%s] (the pod's stable DNS name)"
                    % (adv, want))
    secret_members = {n[:-len("-identity")] for n in secrets if n.endswith("-identity")}
    if secret_members != members:
        problem(directory, "members with a StatefulSet %s, with a Secret %s"
                % (sorted(members), sorted(secret_members)))


def node_configs(directory, out):
    os.makedirs(out, exist_ok=True)
    for _, d in load_docs(directory):
        if d.get("kind") != "ConfigMap":
            continue
        for k, v in (d.get("data") or {}).items():
            doc = yaml.safe_load(v) if k.endswith(".yaml") else None
            if isinstance(doc, dict) and "node" in doc:
                with open(os.path.join(out, k), "w", encoding="utf-8") as f:
                    f.write(v)
                print(k)


def main(argv):
    if len(argv) == 3 and argv[1] == "unit":
        check_unit(argv[2])
    elif len(argv) == 3 and argv[1] == "k8s":
        check_k8s(argv[2])
    elif len(argv) == 4 and argv[1] == "node-configs":
        node_configs(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in PROBLEMS:
        print(p)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
