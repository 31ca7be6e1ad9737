#!/usr/bin/env python3
"""Provider benchmarks (issue #2 targets), printed as figures, never asserted:

1. handshake latency: median of 20 spawns of the release binary, from exec to the go-plugin
   handshake line on stdout (target <= 10 ms);
2. peak RSS and CPU of the provider during `terraform plan`, `apply` and `destroy` of
   `count = 1000` lab_sessions, against terraform's own CPU (targets: RSS <= 40 MiB,
   provider CPU <= 10% of terraform's).

Usage: bench/provider_bench.py [path/to/terraform-provider-lab]   (default: target/release)
Talks only to the local plugin over a unix socket; terraform runs with CHECKPOINT_DISABLE.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def client_cert(tmp):
    """A self-signed P-521 cert, like the one Terraform hands its plugins."""
    key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521",
                    "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return open(crt).read()


def handshake_ms(binary, cert, runs=20):
    env = dict(os.environ, TF_PLUGIN_MAGIC_COOKIE="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
               PLUGIN_PROTOCOL_VERSIONS="6", PLUGIN_CLIENT_CERT=cert)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = p.stdout.readline()
        times.append((time.perf_counter() - start) * 1000)
        p.terminate()
        p.wait()
        if not line.startswith(b"1|6|"):
            sys.exit(f"unexpected handshake line: {line!r}")
    return times


SHIM = """#!/usr/bin/env python3
# Runs the real provider as a child and records its exact CPU time and peak RSS (rusage) plus
# the shim's own CPU, so the benchmark can split terraform's CPU from the provider's.
import json, os, resource, subprocess, sys
p = subprocess.Popen([{binary!r}, *sys.argv[1:]])
_, status, ru = os.wait4(p.pid, 0)
me = resource.getrusage(resource.RUSAGE_SELF)
with open({log!r}, "a") as f:
    f.write(json.dumps({{"cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
                        "shim_cpu": me.ru_utime + me.ru_stime}}) + "\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def terraform_run(workdir, args, rc, log):
    env = dict(os.environ, TF_CLI_CONFIG_FILE=rc, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    open(log, "w").close()
    start = time.perf_counter()
    errors = tempfile.TemporaryFile()
    p = subprocess.Popen(["terraform", f"-chdir={workdir}", *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=errors)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 2):  # plan -detailed-exitcode: 2 = changes
        errors.seek(0)
        sys.exit(f"terraform {args[0]} failed: {errors.read().decode()}")
    runs = [json.loads(line) for line in open(log)]
    provider_cpu = sum(r["cpu"] for r in runs)
    # wait4 counts terraform plus every descendant it reaped (shims and providers).
    terraform_cpu = usage.ru_utime + usage.ru_stime - provider_cpu - sum(r["shim_cpu"] for r in runs)
    return wall, provider_cpu, terraform_cpu, max(r["maxrss_kib"] for r in runs) / 1024, len(runs)


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/terraform-provider-lab"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: run `cargo build --release` first")
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        times = handshake_ms(binary, client_cert(tmp))
        print(f"handshake: median {statistics.median(times):.2f} ms, min {min(times):.2f}, max {max(times):.2f} "
              f"(20 spawns; target <= 10 ms)")

        shim_dir, log = os.path.join(tmp, "shim"), os.path.join(tmp, "rusage.jsonl")
        os.mkdir(shim_dir)
        shim = os.path.join(shim_dir, "terraform-provider-lab")
        with open(shim, "w") as f:
            f.write(SHIM.format(binary=binary, log=log))
        os.chmod(shim, 0o755)
        rc = os.path.join(tmp, "terraformrc")
        with open(rc, "w") as f:
            f.write('provider_installation {\n  dev_overrides {\n'
                    f'    "registry.terraform.io/classroom/lab" = "{shim_dir}"\n'
                    '  }\n  direct {}\n}\n')
        work = os.path.join(tmp, "count1000")
        shutil.copytree(os.path.join(ROOT, "bench/count1000"), work)
        print(f"{'phase':<8} {'wall s':>7} {'provider cpu s':>15} {'terraform cpu s':>16} {'ratio':>6} "
              f"{'provider peak RSS MiB':>22} {'instances':>9}")
        for phase, args in [("plan", ["plan", "-input=false", "-out=plan.out"]),
                            ("apply", ["apply", "-input=false", "plan.out"]),
                            ("replan", ["plan", "-input=false", "-detailed-exitcode"]),
                            ("destroy", ["destroy", "-input=false", "-auto-approve"])]:
            wall, pcpu, tcpu, rss, instances = terraform_run(work, args, rc, log)
            ratio = pcpu / tcpu if tcpu > 0 else float("nan")
            print(f"{phase:<8} {wall:>7.2f} {pcpu:>15.2f} {tcpu:>16.2f} {ratio:>6.1%} {rss:>22.1f} {instances:>9}")
        print("targets: provider peak RSS <= 40 MiB, provider CPU <= 10% of terraform's")


if __name__ == "__main__":
    main()
