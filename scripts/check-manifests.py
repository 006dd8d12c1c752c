#!/usr/bin/env python3
"""Checks that the README's Kubernetes manifests and Compose quick start agree with the image and
with what the container suite runs (Kubernetes itself is not on this machine, so the manifests
are parsed, not applied):

- every Pod that runs healthd:latest (the cluster example): user and group, a healthd command as
  args, ports and probe paths for its role, the readiness file and its mount;
- the quick start Pod's port, probe paths and probe command, user and group, readiness file and its volume,
  read-only root, dropped capabilities and no privilege escalation, against Dockerfile.distroless
  (EXPOSE, HEALTHCHECK, USER, ENV) and scripts/test-container.sh (the same settings, as docker
  flags: --read-only, --cap-drop ALL, no-new-privileges, the tmpfs for /run/healthd);
- the shutdown budget: terminationGracePeriodSeconds covers preStop plus HEALTHD_SHUTDOWN_GRACE;
- the README's Compose block is examples/compose/docker-compose.yml, byte for byte, and that file
  agrees with examples/compose/Dockerfile and the image;
- the README's copy of Dockerfile.distroless's final stage is that stage (trailing comments aside),
  and the Dockerfile's defaults are the users' build: HEALTHD_FROM names its builder stage and
  BASE_IMAGE is the distroless image (the container suite overrides HEALTHD_FROM, never the stages).

Needs PyYAML (Debian's python3-yaml; scripts/suites/manifests.sh installs it). Prints one line per
check; exits 1 on the first disagreement, naming both sides.
"""

import json
import os
import re
import shlex
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def fail(msg):
    sys.exit(f"manifests: FAILED: {msg}")


def same(what, got, want):
    if got != want:
        fail(f"{what}: {got!r}, want {want!r}")
    print(f"manifests: ok: {what} = {got!r}")


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    if not m:
        fail(f"not a duration: {text!r}")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def final_stage(dockerfile):
    """The instructions after the last FROM, continuations joined: [(OP, rest)]."""
    text = re.sub(r"\\\n\s*", " ", read(dockerfile))
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    last = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1]) for l in lines[last + 1:]]


def image_facts(dockerfile):
    facts = {"env": {}, "expose": []}
    for op, rest in final_stage(dockerfile):
        if op == "ENV":
            facts["env"].update(kv.split("=", 1) for kv in shlex.split(rest))
        elif op == "USER":
            facts["user"] = rest
        elif op == "EXPOSE":
            facts["expose"] += [int(p.split("/")[0]) for p in rest.split()]
        elif op == "HEALTHCHECK":
            facts["healthcheck"] = json.loads(rest.split(" CMD ", 1)[1])
        elif op == "ENTRYPOINT":
            facts["entrypoint"] = json.loads(rest)
        elif op == "COPY":
            facts.setdefault("copies", []).append(rest)
    return facts


def yaml_blocks(markdown):
    """Every YAML document of every yaml block (a block may hold several, separated by ---)."""
    docs = []
    for block in re.findall(r"^```yaml\n(.*?)^```", markdown, re.M | re.S):
        docs += [d for d in yaml.safe_load_all(block) if d is not None]
    return docs


def check_healthd_pod(pod, image, ready_file):
    """Any Pod running the image (healthd:latest): user, command, ports and probes agree."""
    name = pod["metadata"]["name"]
    spec = pod["spec"]
    uid, gid = (int(x) for x in image["user"].split(":"))
    same(f"Pod {name} runAsUser", spec["securityContext"]["runAsUser"], uid)
    same(f"Pod {name} runAsGroup", spec["securityContext"]["runAsGroup"], gid)
    for c in spec["containers"]:
        if c.get("image") != "healthd:latest":
            continue
        env = {e["name"]: str(e["value"]) for e in c.get("env", [])}
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if c.get("args"):
            if c["args"][0] not in ("serve", "run", "set", "probe", "wait", "status"):
                fail(f"Pod {name}: args {c['args']} is not a healthd command (ENTRYPOINT {image['entrypoint']})")
        frontend = env.get("HEALTHD_ROLE") == "frontend"
        port = int(env.get("DYN_HTTP_PORT", 8000)) if frontend else int(env.get("DYN_SYSTEM_PORT", 8081))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in c:
                get = c[probe]["httpGet"]
                same(f"Pod {name} {probe} port", ports.get(get["port"], get["port"]), port)
                same(f"Pod {name} {probe} path", get["path"], "/health" if probe == "readinessProbe" else "/live")
        if "HEALTHD_READY_FILE" in env:
            same(f"Pod {name} HEALTHD_READY_FILE", env["HEALTHD_READY_FILE"], ready_file)
            dirs = [m["mountPath"] for m in c.get("volumeMounts", [])]
            if os.path.dirname(ready_file) not in dirs:
                fail(f"Pod {name}: the readiness file's directory {os.path.dirname(ready_file)} is not mounted ({dirs})")


def main():
    readme = read("README.md")
    suite = read("scripts/test-container.sh")
    image = image_facts("Dockerfile.distroless")
    ready_file = image["env"]["HEALTHD_READY_FILE"]
    uid, gid = (int(x) for x in image["user"].split(":"))
    port = image["expose"][0]

    # What the container suite runs, as literal flags in scripts/test-container.sh.
    for flag in ("NONROOT=%d" % uid, "--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                 "--tmpfs %s:uid=$NONROOT,gid=$NONROOT" % os.path.dirname(ready_file),
                 "-p 127.0.0.1::%d" % port, "/health 503", "/live 200"):
        if flag not in suite:
            fail(f"scripts/test-container.sh no longer runs with {flag!r}")
    print("manifests: ok: the container suite runs the image as uid %d, read-only, no capabilities, "
          "no-new-privileges, a tmpfs for %s, port %d" % (uid, os.path.dirname(ready_file), port))

    blocks = yaml_blocks(readme)
    pods = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "Pod"]
    for other in pods:
        if any(c.get("image") == "healthd:latest" for c in other["spec"]["containers"]):
            check_healthd_pod(other, image, ready_file)
    quick = [p for p in pods if p["metadata"]["name"] == "worker"]
    if len(quick) != 1:
        fail(f"README.md has {len(quick)} Pods named worker (the Kubernetes quick start), want 1")
    pod = quick[0]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: str(e["value"]) for e in c["env"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    same("Pod DYN_SYSTEM_PORT", int(env["DYN_SYSTEM_PORT"]), port)
    same("Pod containerPort 'system'", ports["system"], port)
    for probe, path in (("startupProbe", "/live"), ("livenessProbe", "/live"), ("readinessProbe", "/health")):
        get = c[probe]["httpGet"]
        same(f"Pod {probe} path", get["path"], path)
        target = ports.get(get["port"], get["port"])
        same(f"Pod {probe} port", target, port)
        if c[probe]["timeoutSeconds"] >= c[probe]["periodSeconds"]:
            fail(f"{probe}: timeoutSeconds {c[probe]['timeoutSeconds']} >= periodSeconds {c[probe]['periodSeconds']}")
    if c["livenessProbe"]["failureThreshold"] < 2:
        fail("livenessProbe failureThreshold is 1: one slow answer restarts the pod")
    same("Pod runAsUser", pod["securityContext"]["runAsUser"], uid)
    same("Pod runAsGroup", pod["securityContext"]["runAsGroup"], gid)
    same("Pod runAsNonRoot", pod["securityContext"]["runAsNonRoot"], True)
    same("Pod HEALTHD_READY_FILE", env["HEALTHD_READY_FILE"], ready_file)
    (mount,) = c["volumeMounts"]
    same("Pod volume mount (the readiness file's directory)", mount["mountPath"], os.path.dirname(ready_file))
    vol = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    same("Pod volume medium (a tmpfs, like the suite's --tmpfs)", vol["emptyDir"]["medium"], "Memory")
    sc = c["securityContext"]
    same("Pod readOnlyRootFilesystem (--read-only)", sc["readOnlyRootFilesystem"], True)
    same("Pod allowPrivilegeEscalation (no-new-privileges)", sc["allowPrivilegeEscalation"], False)
    same("Pod capabilities drop (--cap-drop ALL)", sc["capabilities"]["drop"], ["ALL"])
    budget = pod["terminationGracePeriodSeconds"]
    need = c["lifecycle"]["preStop"]["sleep"]["seconds"] + duration_s(env["HEALTHD_SHUTDOWN_GRACE"])
    if budget <= need:
        fail(f"terminationGracePeriodSeconds {budget} does not cover preStop + HEALTHD_SHUTDOWN_GRACE ({need} s)")
    print(f"manifests: ok: terminationGracePeriodSeconds {budget} covers preStop + grace ({need:g} s)")

    execs = [b["readinessProbe"]["exec"]["command"] for b in blocks
             if isinstance(b, dict) and "exec" in b.get("readinessProbe", {})]
    if not execs:
        fail("README.md has no exec readinessProbe snippet")
    for cmd in execs:
        same("exec readinessProbe command (the image's HEALTHCHECK)", cmd, image["healthcheck"])

    # The Compose quick start is the example file, and the example agrees with its Dockerfile.
    example = read("examples/compose/docker-compose.yml")
    if f"```yaml\n{example}```" not in readme:
        fail("README.md's Compose block is not examples/compose/docker-compose.yml (copy the file into the README)")
    print("manifests: ok: README's Compose block is examples/compose/docker-compose.yml")
    compose = yaml.safe_load(example)["services"]
    worker = compose["worker"]
    wimage = image_facts("examples/compose/Dockerfile")
    binary = next(c.split()[-1] for c in wimage["copies"] if c.startswith("--from=healthd /healthd "))
    same("Compose healthcheck test", worker["healthcheck"]["test"], ["CMD", binary, "probe"])
    same("examples/compose/Dockerfile HEALTHCHECK", wimage["healthcheck"], [binary, "probe"])
    same("Compose HEALTHD_READY_FILE", worker["environment"]["HEALTHD_READY_FILE"], ready_file)
    same("examples/compose/Dockerfile HEALTHD_READY_FILE", wimage["env"]["HEALTHD_READY_FILE"], ready_file)
    same("Compose DYN_SYSTEM_PORT", int(worker["environment"]["DYN_SYSTEM_PORT"]), port)
    same("examples/compose/Dockerfile USER", wimage["user"], image["user"])
    same("Compose tmpfs", worker["tmpfs"], [f"{os.path.dirname(ready_file)}:uid={uid},gid={gid},mode=0755"])
    same("Compose read_only", worker["read_only"], True)
    if duration_s(worker["stop_grace_period"]) <= duration_s(worker["environment"]["HEALTHD_SHUTDOWN_GRACE"]):
        fail("Compose stop_grace_period is not longer than HEALTHD_SHUTDOWN_GRACE")
    same("Compose client depends_on", compose["client"]["depends_on"], {"worker": {"condition": "service_healthy"}})

    # The README's final stage (the dockerfile block that starts FROM ${BASE_IMAGE}) is the file's.
    snippets = re.findall(r"^```dockerfile\n(FROM \$\{BASE_IMAGE\}.*?)^```", readme, re.M | re.S)
    if len(snippets) != 1:
        fail(f"README.md has {len(snippets)} copies of the final stage (FROM ${{BASE_IMAGE}}), want 1")
    shown = [re.sub(r"\s+#.*$", "", l).strip() for l in snippets[0].splitlines()]
    shown = [l for l in shown if l][1:]  # without the FROM line, like final_stage()
    actual = [f"{op} {rest}" for op, rest in final_stage("Dockerfile.distroless")]
    same("README's final stage of Dockerfile.distroless", shown, actual)
    text = read("Dockerfile.distroless")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text.split("\nFROM ", 1)[0], re.M))
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    same("Dockerfile.distroless default BASE_IMAGE", args.get("BASE_IMAGE"), "gcr.io/distroless/static-debian12:nonroot")
    same("Dockerfile.distroless default HEALTHD_FROM (its builder stage)", args.get("HEALTHD_FROM"),
         next((name for image, name in stages if image.startswith("rust:")), None))
    same("Dockerfile.distroless binary stage", ("${HEALTHD_FROM}", "binary") in stages, True)
    print("manifests: all checks passed")


if __name__ == "__main__":
    main()
