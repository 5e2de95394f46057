#!/usr/bin/env python3
"""The benchmark orchestrator behind scripts/bench.sh (stdlib only).

For each scenario it runs the same load against the direct path (no proxy), this
project's g3proxy and each peer, one at a time:

- every proxy under test runs alone on core 1 (`taskset -c 1`, one worker), freshly
  started for each scenario so its peak RSS (VmHWM) belongs to that scenario;
- the load generator (wrk, or scripts/bench/loadgen) and the nginx target run on
  core 0;
- the proxy's CPU time (utime+stime of its process tree, from /proc/PID/stat) is
  read before and after the load and divided by the units of work done.

It prints a Markdown table (scenario | direct | this project | peers | ratio to the
best peer | ratio to direct), a table of the issue-6 targets (met / missed), and
writes both as JSON. bench.sh installs the tools and builds the binaries first;
run this directly only with `--bin` and `--loadgen` given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONF = os.path.join(HERE, "conf")
CLK_TCK = os.sysconf("SC_CLK_TCK")
LUA = os.path.join(HERE, "wrk_report.lua")

PROXY_CORE = "1"
LOAD_CORE = "0"
# target ports rotated over the cells (Bench.next_target): more than the cells of a run
TARGET_HTTP_PORTS = 64
TARGET_HTTPS_PORTS = 16

# Every peer the benchmark knows: binary, the Debian package, the roles it plays.
PEERS = {
    "squid": {"bin": "squid", "pkg": "squid", "roles": ["http"]},
    "tinyproxy": {"bin": "tinyproxy", "pkg": "tinyproxy", "roles": ["http"]},
    "dante": {"bin": "danted", "pkg": "dante-server", "roles": ["socks"]},
    "microsocks": {"bin": "microsocks", "pkg": "microsocks", "roles": ["socks"]},
    "haproxy": {"bin": "haproxy", "pkg": "haproxy", "roles": ["tcp", "tls"]},
    "socat": {"bin": "socat", "pkg": "socat", "roles": ["tcp"]},
    "nginx": {"bin": "nginx", "pkg": "libnginx-mod-stream", "roles": ["tcp", "tls"]},
}
PEER_ORDER = list(PEERS)

# The scenarios, in table order. `role` picks the project's server and the peers;
# `kind` picks the load.
SCENARIOS = [
    {"name": "http_forward", "title": "HTTP forward (keep-alive, small responses)",
     "kind": "wrk_forward", "role": "http", "unit": "request"},
    {"name": "connect_bulk", "title": "CONNECT bulk (16 MiB objects)",
     "kind": "bulk", "via": "connect", "role": "http", "unit": "MB"},
    {"name": "connect_rate", "title": "CONNECT new tunnels",
     "kind": "rate", "via": "connect", "role": "http", "unit": "tunnel"},
    {"name": "socks5_bulk", "title": "SOCKS5 bulk (16 MiB objects)",
     "kind": "bulk", "via": "socks5", "role": "socks", "unit": "MB"},
    {"name": "socks5_rate", "title": "SOCKS5 new connections",
     "kind": "rate", "via": "socks5", "role": "socks", "unit": "connection"},
    {"name": "tcp_stream_bulk", "title": "tcp_stream bulk (16 MiB objects)",
     "kind": "bulk", "via": "portmap", "role": "tcp", "unit": "MB"},
    {"name": "tls_stream_handshake", "title": "tls_stream new TLS handshakes",
     "kind": "wrk_tls_handshake", "role": "tls", "unit": "handshake"},
    {"name": "tls_stream_bulk", "title": "tls_stream bulk (16 MiB objects)",
     "kind": "wrk_tls_bulk", "role": "tls", "unit": "MB"},
    {"name": "idle_connect_10k", "title": "10,000 idle CONNECT tunnels",
     "kind": "idle", "role": "http", "unit": "tunnel"},
]

PROJECT_ROLE_CONF = {
    "http": "project-http.yaml",
    "socks": "project-socks.yaml",
    "tcp": "project-tcp_stream.yaml",
    "tls": "project-tls_stream.yaml",
}

MODES = {
    # seconds of load per cell, connections, object counts
    "quick": {"rate_s": 1.0, "bulk_s": 1.0, "wrk_s": 1, "idle_count": 300,
              "wrk_conns": 100, "rate_conns": 32, "bulk_conns": 2, "hs_conns": 32},
    "short": {"rate_s": 7.0, "bulk_s": 5.0, "wrk_s": 7, "idle_count": 10000,
              "wrk_conns": 256, "rate_conns": 64, "bulk_conns": 2, "hs_conns": 64},
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# /proc accounting
# ---------------------------------------------------------------------------

def _stat_fields(pid: int):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("latin-1")
    return data[data.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of the tree, plus what its members reaped from dead children."""
    ticks = 0
    for p in process_tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_mem_kib(pid: int) -> tuple[int, bool]:
    """(resident KiB, multi-process?): VmRSS of a single process; for a tree of
    processes (dante, socat) the sum of their PSS, so shared pages count once."""
    pids = process_tree(pid)
    if len(pids) == 1:
        return _status_kib(pid, "VmRSS"), False
    return sum(_pss_kib(p) for p in pids), True


class RssSampler:
    """Samples the subject's resident memory while the load runs. The peak of a
    single process is its VmHWM; a multi-process peer (dante's children, socat's
    forks, which die before the end) gets the highest sampled PSS sum."""

    def __init__(self, pid: int, period: float = 0.2):
        self.pid, self.period = pid, period
        self.peak_kib = 0
        self.multi = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kib, multi = tree_mem_kib(self.pid)
            self.multi = self.multi or multi
            self.peak_kib = max(self.peak_kib, kib)
            self._stop.wait(self.period)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        kib, multi = tree_mem_kib(self.pid)
        self.multi = self.multi or multi
        peak = max(self.peak_kib, kib)
        if not self.multi:
            peak = max(peak, _status_kib(self.pid, "VmHWM"))
        return peak


def foreign_cpu_seconds() -> float:
    """CPU time used so far by every process that is not this benchmark or one of
    its descendants (other builds and tests on the machine): the delta over a cell
    says how much the measurement was disturbed."""
    kids = _children()
    ours, todo = set(), [os.getpid()]
    while todo:
        p = todo.pop()
        ours.add(p)
        todo.extend(kids.get(p, []))
    ticks = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in ours:
            continue
        try:
            f = _stat_fields(int(d))
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / CLK_TCK


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distinct_free_ports(n: int) -> list[int]:
    """n different free ports (free_port() may hand one out twice)."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def wait_port(port: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def fill(template_name: str, out_path: str, vars: dict[str, str]) -> str:
    with open(os.path.join(CONF, template_name)) as f:
        text = f.read()
    for k, v in vars.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{template_name}: unfilled {left}")
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the benchmark dies (even by SIGKILL), so a
    killed run leaves no daemon behind. Survives the exec of taskset and the program."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


class Daemon:
    """A server started in the foreground in its own session, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], port: int, workdir: str, core: str,
                 own_session: bool = True):
        """`own_session=False` for the processes of the load side (the target, the idle
        sink): with sched autogroup (on in Debian kernels) a session is a scheduling group,
        and the load generator (in this script's session) and the target must compete on
        core 0 thread against thread, not group against group (which halved the target's
        batching and cost the proxied scenarios a third of their rate)."""
        self.name, self.port = name, port
        self.logpath = os.path.join(workdir, f"{name}.out")
        self._log = open(self.logpath, "ab")
        self.own_session = own_session
        self.proc = subprocess.Popen(
            ["taskset", "-c", core] + argv, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=own_session, cwd=workdir,
            preexec_fn=_die_with_parent)
        self.pid = self.proc.pid  # taskset execs the program: same PID

    def ready(self, timeout: float = 15.0) -> bool:
        return wait_port(self.port, self.proc, timeout)

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if not self.own_session:
            # a single process in this script's session: signal it alone
            if self.proc.poll() is None:
                for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                    self.proc.send_signal(sig)
                    try:
                        self.proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            self._log.close()
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.pid, sig)  # the session we started: the daemon and its children
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # children of a forking daemon that outlived it
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def run_client(argv: list[str], env: dict | None, timeout: float) -> tuple[int, str, str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        p = subprocess.run(["taskset", "-c", LOAD_CORE] + argv, env=full_env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, preexec_fn=_die_with_parent)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return -1, out, f"timed out after {timeout:.0f}s"


# ---------------------------------------------------------------------------
# the bench
# ---------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.mode = MODES["quick" if args.quick else "short"]
        if args.duration:
            for k in ("rate_s", "bulk_s"):
                self.mode[k] = args.duration
            self.mode["wrk_s"] = max(1, int(round(args.duration)))
        if args.http_conns:
            self.mode["wrk_conns"] = args.http_conns
        self.work = tempfile.mkdtemp(prefix="px-bench-")
        os.chmod(self.work, 0o755)
        # The target listens on many ports and every cell takes the next one: a cell of new
        # connections per second leaves ~100k loopback tuples in TIME_WAIT towards the port it
        # used, which makes every later connect() to that port search longer for a free
        # source port; without the rotation each subject would pay for the ones before it.
        ports = distinct_free_ports(TARGET_HTTP_PORTS + TARGET_HTTPS_PORTS)
        self.target_http_ports = ports[:TARGET_HTTP_PORTS]
        self.target_https_ports = ports[TARGET_HTTP_PORTS:]
        self.cells_started = 0
        self.target_http = self.target_http_ports[0]
        self.target_https = self.target_https_ports[0]
        self.target: Daemon | None = None
        self.nginx_modules = "/usr/lib/nginx/modules"
        self.results: dict[str, dict[str, dict]] = {}
        self.t_start = time.time()

    # -- setup ------------------------------------------------------------
    def setup(self) -> None:
        w = self.work
        os.makedirs(os.path.join(w, "www"))
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(w, "tmp-nginx-target", sub))
        with open(os.path.join(w, "www", "16m"), "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(16):
                f.write(chunk)
        subprocess.run(
            # RSA-2048, the most common certificate: its signature makes the TLS server (the
            # proxy) the costly side of a handshake, so handshakes/s measures the proxy
            # rather than wrk's own client-side work on core 0
            ["openssl", "req", "-x509", "-newkey", "rsa:2048",
             "-nodes", "-keyout", os.path.join(w, "key.pem"), "-out", os.path.join(w, "cert.pem"),
             "-days", "30", "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
            check=True, capture_output=True)
        with open(os.path.join(w, "cert-and-key.pem"), "w") as out:
            for n in ("cert.pem", "key.pem"):
                with open(os.path.join(w, n)) as f:
                    out.write(f.read())
        for n in ("key.pem", "cert-and-key.pem"):
            os.chmod(os.path.join(w, n), 0o644)
        def listen(ports: list[int], extra: str) -> str:
            return "\n        ".join(f"listen 127.0.0.1:{p}{extra} backlog=4096;" for p in ports)
        conf = fill("nginx-target.conf", os.path.join(w, "nginx-target.conf"),
                    {"DIR": w, "HTTP_LISTEN": listen(self.target_http_ports, ""),
                     "HTTPS_LISTEN": listen(self.target_https_ports, " ssl")})
        self.target = Daemon("nginx-target", ["nginx", "-c", conf, "-p", w], self.target_http, w, LOAD_CORE,
                             own_session=False)
        if not self.target.ready() or not all(
                wait_port(p, self.target.proc) for p in self.target_http_ports + self.target_https_ports):
            raise RuntimeError("the nginx target did not start:\n" + self.target.log_tail())

    def next_target(self) -> None:
        """Points the next cell at target ports no recent cell used (see __init__)."""
        i = self.cells_started
        self.cells_started += 1
        self.target_http = self.target_http_ports[i % len(self.target_http_ports)]
        self.target_https = self.target_https_ports[i % len(self.target_https_ports)]

    def teardown(self) -> None:
        if self.target:
            self.target.stop()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"kept work dir {self.work}")

    # -- subjects -----------------------------------------------------------
    def peer_installed(self, peer: str) -> bool:
        if not shutil.which(PEERS[peer]["bin"]) and not os.path.exists("/usr/sbin/" + PEERS[peer]["bin"]):
            return False
        if peer == "nginx":
            return os.path.exists(os.path.join(self.nginx_modules, "ngx_stream_module.so"))
        return True

    def peers_for(self, role: str) -> list[str]:
        return [p for p in PEER_ORDER if role in PEERS[p]["roles"]]

    def start_project(self, role: str, d: str, binary: str):
        """Returns (Daemon|None, status, detail)."""
        port = free_port()
        vars = {"DIR": self.work, "PORT": port, "TARGET_PORT": self.target_http}
        with open(os.path.join(CONF, "project-base.yaml")) as f:
            base = f.read()
        with open(os.path.join(CONF, PROJECT_ROLE_CONF[role])) as f:
            server = f.read()
        text = base + server
        for k, v in vars.items():
            text = text.replace(f"@{k}@", str(v))
        conf = os.path.join(d, "g3proxy.yaml")
        with open(conf, "w") as f:
            f.write(text)
        check = subprocess.run([binary, "-t", "-c", conf], capture_output=True, timeout=60)
        if check.returncode != 0:
            msg = (check.stdout + check.stderr).decode("utf-8", "replace").strip()
            if "not implemented" in msg:
                return None, "not_implemented", msg.splitlines()[0] if msg else ""
            return None, "failed", "config check failed: " + msg
        ctl = os.path.join(d, "ctl")
        os.makedirs(ctl, exist_ok=True)
        dm = Daemon("g3proxy", [binary, "-c", conf, "-G", "bench", "--control-dir", ctl],
                    port, d, PROXY_CORE)
        return dm, "ok", ""

    def start_peer(self, peer: str, role: str, d: str):
        port = free_port()
        v = {"DIR": d, "PORT": port, "TARGET_PORT": self.target_http, "NGINX_MODULES": self.nginx_modules}
        # TLS material is shared from the work dir
        for n in ("cert.pem", "key.pem", "cert-and-key.pem"):
            shutil.copy(os.path.join(self.work, n), os.path.join(d, n))
        if peer == "squid":
            sd = os.path.join(d, "squid")
            os.makedirs(sd)
            shutil.chown(sd, "proxy", "proxy")
            conf = fill("squid.conf", os.path.join(d, "squid.conf"), v)
            argv = ["squid", "-N", "-f", conf, "-n", f"pxbench{os.getpid()}"]
        elif peer == "tinyproxy":
            conf = fill("tinyproxy.conf", os.path.join(d, "tinyproxy.conf"), v)
            for n in ("tinyproxy.log", "tinyproxy.pid"):
                open(os.path.join(d, n), "a").close()
                os.chmod(os.path.join(d, n), 0o666)
            os.chmod(d, 0o777)
            argv = ["tinyproxy", "-d", "-c", conf]
        elif peer == "dante":
            conf = fill("danted.conf", os.path.join(d, "danted.conf"), v)
            argv = ["danted", "-f", conf, "-p", os.path.join(d, "danted.pid"), "-N", "1"]
        elif peer == "microsocks":
            argv = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
        elif peer == "haproxy":
            conf = fill(f"haproxy-{role}.cfg", os.path.join(d, "haproxy.cfg"), v)
            argv = ["haproxy", "-db", "-f", conf]
        elif peer == "socat":
            argv = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=4096",
                    f"TCP:127.0.0.1:{self.target_http}"]
        elif peer == "nginx":
            conf = fill(f"nginx-stream-{role}.conf", os.path.join(d, "nginx-peer.conf"), v)
            argv = ["nginx", "-c", conf, "-p", d]
        else:
            raise ValueError(peer)
        return Daemon(peer, argv, port, d, PROXY_CORE)

    # -- loads ----------------------------------------------------------------
    def wrk(self, url: str, conns: int, env: dict) -> dict:
        secs = self.mode["wrk_s"]
        argv = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "5s", "-s", LUA, url]
        rc, out, err = run_client(argv, env, secs + 60)
        m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk produced no result (rc={rc}): {err.strip()[:300]} {out.strip()[-300:]}")
        r = json.loads(m.group(1))
        errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
        secs_real = r["duration_us"] / 1e6
        if r["requests"] == 0:
            raise RuntimeError(f"wrk: no request completed ({errors} errors): {out.strip()[-300:]}")
        return {"ops": r["requests"], "errors": errors, "bytes": r["bytes"], "elapsed_s": secs_real,
                "rate": r["requests"] / secs_real, "mb_per_s": r["bytes"] / 1e6 / secs_real,
                "p50_ms": r["lat_p50_ms"], "p99_ms": r["lat_p99_ms"], "raw": r}

    def loadgen(self, mode: str, via: str, target: int, proxy: int | None, path: str, conns: int,
                secs: float) -> dict:
        argv = [self.args.loadgen, mode, "--via", via, "--target", f"127.0.0.1:{target}",
                "--path", path, "--conns", str(conns), "--duration", str(secs)]
        if proxy is not None:
            argv += ["--proxy", f"127.0.0.1:{proxy}"]
        rc, out, err = run_client(argv, None, secs + 60)
        try:
            r = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"loadgen produced no result (rc={rc}): {err.strip()[:300]}")
        if r["ops"] == 0:
            raise RuntimeError(f"loadgen: nothing succeeded ({r['errors']} errors): {r.get('first_error')}")
        return {"ops": r["ops"], "errors": r["errors"], "bytes": r["bytes"], "elapsed_s": r["elapsed_s"],
                "rate": r["rate"], "mb_per_s": r["mb_per_s"], "p50_ms": r["lat_p50_ms"],
                "p99_ms": r["lat_p99_ms"], "first_error": r.get("first_error")}

    def load(self, sc: dict, port: int | None) -> dict:
        """Runs the scenario's load against `port` (a proxy or port map), or direct when None."""
        m, kind = self.mode, sc["kind"]
        if kind == "wrk_forward":
            if port is None:
                return self.wrk(f"http://127.0.0.1:{self.target_http}/small", m["wrk_conns"], {})
            return self.wrk(f"http://127.0.0.1:{port}/", m["wrk_conns"],
                            {"BENCH_PATH": f"http://127.0.0.1:{self.target_http}/small"})
        if kind in ("bulk", "rate"):
            secs = m["bulk_s"] if kind == "bulk" else m["rate_s"]
            conns = m["bulk_conns"] if kind == "bulk" else m["rate_conns"]
            path = "/16m" if kind == "bulk" else "/small"
            if port is None:
                return self.loadgen(kind, "direct", self.target_http, None, path, conns, secs)
            if sc["via"] == "portmap":
                return self.loadgen(kind, "direct", port, None, path, conns, secs)
            return self.loadgen(kind, sc["via"], self.target_http, port, path, conns, secs)
        if kind in ("wrk_tls_handshake", "wrk_tls_bulk"):
            p = self.target_https if port is None else port
            if kind == "wrk_tls_handshake":
                return self.wrk(f"https://127.0.0.1:{p}/small", m["hs_conns"], {"BENCH_CLOSE": "1"})
            return self.wrk(f"https://127.0.0.1:{p}/16m", m["bulk_conns"], {})
        raise ValueError(kind)

    def units(self, sc: dict, r: dict) -> float:
        return r["bytes"] / 1e6 if sc["unit"] == "MB" else float(r["ops"])

    def measure(self, sc: dict, daemon: Daemon) -> dict:
        sampler = RssSampler(daemon.pid)
        cpu0 = tree_cpu_seconds(daemon.pid)
        try:
            r = self.load(sc, daemon.port)
        finally:
            cpu1 = tree_cpu_seconds(daemon.pid)
            peak = sampler.stop()
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"{daemon.name} exited during the load:\n{daemon.log_tail()}")
        cpu = cpu1 - cpu0
        r.update({"cpu_s": round(cpu, 3), "cpu_us_per_unit": cpu * 1e6 / max(self.units(sc, r), 1e-9),
                  "cpu_util": cpu / r["elapsed_s"], "peak_rss_mib": peak / 1024.0,
                  "peak_rss_kind": "pss-sum" if sampler.multi else "VmHWM"})
        return r

    def idle(self, daemon: Daemon, d: str) -> dict:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        want = self.mode["idle_count"]
        # the proxy holds two sockets per tunnel (client + upstream)
        count = min(want, max(100, (hard - 200) // 2))
        sink_port = free_port()
        sink = Daemon("sink", [self.args.loadgen, "sink", "--listen", f"127.0.0.1:{sink_port}"],
                      sink_port, d, LOAD_CORE, own_session=False)
        holder = None
        try:
            if not sink.ready():
                raise RuntimeError("the idle sink did not start: " + sink.log_tail())
            base_kib, _ = tree_mem_kib(daemon.pid)
            cpu0 = tree_cpu_seconds(daemon.pid)
            ready = os.path.join(d, "hold.ready")
            t0 = time.time()
            holder = Daemon("hold", [self.args.loadgen, "hold", "--via", "connect",
                                     "--proxy", f"127.0.0.1:{daemon.port}",
                                     "--target", f"127.0.0.1:{sink_port}", "--count", str(count),
                                     "--ready-file", ready, "--hold", "600", "--timeout", "5",
                                     "--duration", "60"],
                            0, d, LOAD_CORE, own_session=False)
            deadline = time.time() + 90
            while not os.path.exists(ready):
                if time.time() > deadline or holder.proc.poll() is not None:
                    raise RuntimeError("the idle tunnels were not opened in time: " + holder.log_tail())
                time.sleep(0.1)
            open_s = time.time() - t0
            with open(ready) as f:
                h = json.loads(f.read())
            time.sleep(1.0)
            rss_kib, multi = tree_mem_kib(daemon.pid)
            peak_kib = rss_kib if multi else max(rss_kib, _status_kib(daemon.pid, "VmHWM"))
            cpu = tree_cpu_seconds(daemon.pid) - cpu0
            opened = h["opened"]
            if opened == 0:
                raise RuntimeError(f"no tunnel opened: {h.get('first_error')}")
            per_tunnel_kib = (rss_kib - base_kib) / opened
            # measured with `opened` tunnels; scaled linearly to 10,000 when fewer
            # could be opened (the fd limit: two sockets per tunnel in the proxy)
            rss_10k_mib = (base_kib + per_tunnel_kib * 10000) / 1024.0
            return {"ops": opened, "opened": opened, "errors": h["errors"], "wanted": want, "tried": count,
                    "first_error": h.get("first_error"), "open_s": round(open_s, 2),
                    "base_rss_mib": base_kib / 1024.0, "rss_mib": rss_kib / 1024.0,
                    "per_tunnel_kib": per_tunnel_kib, "rss_10k_mib": rss_10k_mib,
                    "peak_rss_mib": peak_kib / 1024.0, "cpu_s": round(cpu, 3),
                    "cpu_us_per_unit": cpu * 1e6 / opened}
        finally:
            if holder:
                holder.stop()
            sink.stop()

    # -- one cell ---------------------------------------------------------------
    def over_budget(self) -> bool:
        """Past --budget seconds, no more waiting for quiet and no more retries."""
        return self.args.budget > 0 and time.time() - self.t_start > self.args.budget

    def wait_quiet(self) -> float:
        """Waits (up to --wait-quiet s) until other processes use under 5 % of a core."""
        if self.args.wait_quiet <= 0:
            return 0.0
        t0 = time.time()
        while time.time() - t0 < self.args.wait_quiet:
            f0 = foreign_cpu_seconds()
            time.sleep(1.0)
            if foreign_cpu_seconds() - f0 < 0.05:
                break
        return time.time() - t0

    def cell(self, sc: dict, subject: str) -> dict:
        """One measurement; repeated (up to --retry-noisy times) while other processes
        disturbed it, keeping the least disturbed attempt."""
        best = None
        for attempt in range(1 + max(0, self.args.retry_noisy)):
            if attempt > 0 and self.over_budget():
                break
            waited = 0.0 if self.over_budget() else self.wait_quiet()
            f0, t0 = foreign_cpu_seconds(), time.time()
            r = self._cell(sc, subject)
            if r.get("status") != "ok":
                return r
            r["foreign_cpu_cores"] = round((foreign_cpu_seconds() - f0) / max(time.time() - t0, 1e-3), 3)
            if waited >= 1.5:
                r["waited_quiet_s"] = round(waited, 1)
            r["attempts"] = attempt + 1
            if best is None or r["foreign_cpu_cores"] < best["foreign_cpu_cores"]:
                best = r
            if best["foreign_cpu_cores"] <= NOISY_CORES or attempt == self.args.retry_noisy:
                break
            log(f"{sc['name']:<21} {subject:<11} disturbed ({r['foreign_cpu_cores']:.2f} cores used by "
                f"other processes), measuring again")
        best["attempts"] = attempt + 1
        return best

    def _cell(self, sc: dict, subject: str) -> dict:
        name = sc["name"]
        self.next_target()
        if subject == "direct":
            if sc["kind"] == "idle":
                return {"status": "not_applicable"}
            try:
                return {"status": "ok", **self.load(sc, None)}
            except Exception as e:  # noqa: BLE001 - reported in the table
                return {"status": "failed", "detail": str(e)}
        d = tempfile.mkdtemp(prefix=f"{name}-{subject}-", dir=self.work)
        os.chmod(d, 0o755)
        if subject == "project" or subject.startswith("project:"):
            binary = self.args.bin if subject == "project" else self.args.variants[subject]
            daemon, status, detail = self.start_project(sc["role"], d, binary)
            if daemon is None:
                return {"status": status, "detail": detail}
        else:
            if not self.peer_installed(subject):
                return {"status": "not_installed"}
            daemon = self.start_peer(subject, sc["role"], d)
        try:
            if not daemon.ready():
                return {"status": "failed", "detail": f"{subject} did not start:\n{daemon.log_tail()}"}
            time.sleep(0.2)
            if sc["kind"] == "idle":
                r = self.idle(daemon, d)
            else:
                r = self.measure(sc, daemon)
            return {"status": "ok", **r}
        except Exception as e:  # noqa: BLE001 - reported in the table
            return {"status": "failed", "detail": f"{e}\n{daemon.log_tail(5)}".strip()}
        finally:
            daemon.stop()

    def run(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else None
        for sc in SCENARIOS:
            if only and sc["name"] not in only:
                continue
            subjects = ["direct", "project"] + list(self.args.variants) + [p for p in self.peers_for(sc["role"]) if p in self.args.peer_set]
            self.results[sc["name"]] = {}
            for subj in subjects:
                t0 = time.time()
                r = self.cell(sc, subj)
                self.results[sc["name"]][subj] = r
                log(f"{sc['name']:<21} {subj:<11} {summary(sc, r)}  ({time.time() - t0:.1f}s)")


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------

def summary(sc: dict, r: dict) -> str:
    if r.get("status") != "ok":
        detail = (r.get("detail") or "").splitlines()
        return r.get("status", "?") + (f": {detail[0][:160]}" if detail else "")
    if sc["kind"] == "idle":
        return (f"{r['ops']} of {r['tried']} tunnels, RSS {r['rss_mib']:.1f} MiB ({r['per_tunnel_kib']:.1f} KiB/tunnel, "
                f"{r['rss_10k_mib']:.1f} MiB at 10k)")
    s = f"{r['rate']:.0f}/s" if sc["unit"] != "MB" else f"{r['mb_per_s']:.0f} MB/s"
    if r.get("p99_ms") is not None and sc["unit"] != "MB":
        s += f", p99 {r['p99_ms']:.2f} ms"
    if "cpu_us_per_unit" in r:
        s += f", {r['cpu_us_per_unit']:.1f} us/{sc['unit']}, cpu {r['cpu_util'] * 100:.0f}%, peak RSS {r['peak_rss_mib']:.1f} MiB"
    if r.get("errors"):
        s += f", {r['errors']} errors"
    if r.get("foreign_cpu_cores", 0) > 0.1:
        s += f"  [NOISY: other processes used {r['foreign_cpu_cores']:.2f} cores]"
    return s


# metric rows: (scenario kind filter, key, label, better)
def metric_rows(sc: dict) -> list[tuple[str, str, str]]:
    u = sc["unit"]
    if sc["kind"] == "idle":
        return [("opened", "idle tunnels held (of 10,000 wanted)", "higher"),
                ("rss_10k_mib", "RSS with 10,000 idle tunnels, MiB", "lower"),
                ("per_tunnel_kib", "RSS per idle tunnel, KiB", "lower"),
                ("cpu_us_per_unit", "proxy CPU µs per tunnel opened", "lower")]
    rows = []
    if u == "MB":
        rows.append(("mb_per_s", "MB/s", "higher"))
    else:
        rows.append(("rate", {"request": "requests/s", "tunnel": "tunnels/s", "connection": "connections/s",
                              "handshake": "handshakes/s"}[u], "higher"))
        rows.append(("p99_ms", "p99 latency, ms", "lower"))
    rows.append(("cpu_us_per_unit", f"proxy CPU µs per {u}", "lower"))
    rows.append(("peak_rss_mib", "peak RSS, MiB", "lower"))
    return rows


# a cell during which other processes on the machine used more than this many
# cores is starred in the table
NOISY_CORES = 0.25

CELL_TEXT = {"not_implemented": "n/a (not implemented)", "not_installed": "not installed",
             "failed": "failed", "not_applicable": "—"}


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def build_rows(results: dict, peer_cols: list[str], variants: list[str] = ()) -> list[dict]:
    rows = []
    for sc in SCENARIOS:
        res = results.get(sc["name"])
        if res is None:
            continue
        for key, label, better in metric_rows(sc):
            values, cells = {}, {}
            for subj in ["direct", "project"] + list(variants) + peer_cols:
                r = res.get(subj)
                if r is None:
                    cells[subj] = "—"
                    values[subj] = None
                elif r["status"] != "ok":
                    cells[subj] = CELL_TEXT.get(r["status"], r["status"])
                    values[subj] = None
                else:
                    v = r.get(key)
                    values[subj] = v
                    cells[subj] = fmt(v)
                    if v is not None and r.get("foreign_cpu_cores", 0) > NOISY_CORES:
                        cells[subj] += "*"
            peer_vals = [(p, values[p]) for p in peer_cols if values.get(p) is not None]
            best = None
            if peer_vals:
                best = (max if better == "higher" else min)(peer_vals, key=lambda x: x[1])
            proj = values.get("project")
            r_best = proj / best[1] if (proj is not None and best and best[1]) else None
            direct = values.get("direct")
            r_direct = proj / direct if (proj is not None and direct) else None
            rows.append({"scenario": sc["name"], "metric": key, "label": label, "better": better,
                         "values": values, "cells": cells, "best_peer": best[0] if best else None,
                         "ratio_best_peer": r_best, "ratio_direct": r_direct})
    return rows


def markdown_table(rows: list[dict], peer_cols: list[str], variants: list[str] = ()) -> str:
    head = (["scenario", "metric", "direct", "this project"]
            + [f"this project ({v.split(':', 1)[1]})" for v in variants]
            + peer_cols + ["ratio to best peer", "ratio to direct"])
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    last = None
    for r in rows:
        sc = r["scenario"] if r["scenario"] != last else ""
        last = r["scenario"]
        arrow = "↑" if r["better"] == "higher" else "↓"
        rb = f"{r['ratio_best_peer']:.2f}x ({r['best_peer']})" if r["ratio_best_peer"] is not None else "—"
        rd = f"{r['ratio_direct']:.2f}x" if r["ratio_direct"] is not None else "—"
        line = [sc, f"{r['label']} {arrow}", r["cells"]["direct"], r["cells"]["project"]]
        line += [r["cells"].get(v, "—") for v in variants]
        line += [r["cells"].get(p, "—") for p in peer_cols] + [rb, rd]
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def find_row(rows, scenario, metric):
    for r in rows:
        if r["scenario"] == scenario and r["metric"] == metric:
            return r
    return None


def check_targets(rows: list[dict], results: dict) -> list[dict]:
    """The issue-6 targets, judged on this run."""
    out = []

    def add(name, status, detail):
        out.append({"target": name, "status": status, "detail": detail})

    def proj_status(sc):
        r = results.get(sc, {}).get("project")
        return None if r is None else r["status"]

    def vs_best_peer(sc, metric, factor, name):
        row = find_row(rows, sc, metric)
        if row is None:
            return add(name, "not run", "")
        if row["values"]["project"] is None:
            return add(name, "n/a", f"this project: {proj_status(sc)}")
        if row["best_peer"] is None:
            return add(name, "no peer", "no peer measured in this run")
        ratio = row["ratio_best_peer"]
        ok = ratio >= factor if row["better"] == "higher" else ratio <= factor
        add(name, "met" if ok else "missed",
            f"{fmt(row['values']['project'])} vs {row['best_peer']} {fmt(row['values'][row['best_peer']])} "
            f"= {ratio:.2f}x")

    def absolute(sc, metric, limit, name, unit):
        row = find_row(rows, sc, metric)
        if row is None:
            return add(name, "not run", "")
        v = row["values"]["project"]
        if v is None:
            return add(name, "n/a", f"this project: {proj_status(sc)}")
        add(name, "met" if v <= limit else "missed", f"{fmt(v)} {unit} (limit {limit})")

    vs_best_peer("http_forward", "rate", 3.5, "HTTP forward requests/s ≥ 3.5x the best peer")
    absolute("http_forward", "cpu_us_per_unit", 22, "HTTP forward proxy CPU ≤ 22 µs per request", "µs")
    for sc in ("connect_bulk", "socks5_bulk", "tcp_stream_bulk"):
        row = find_row(rows, sc, "mb_per_s")
        name = f"{sc} MB/s ≥ 0.9x direct"
        if row is None:
            add(name, "not run", "")
        elif row["values"]["project"] is None:
            add(name, "n/a", f"this project: {proj_status(sc)}")
        elif row["ratio_direct"] is None:
            add(name, "no direct", "")
        else:
            add(name, "met" if row["ratio_direct"] >= 0.9 else "missed",
                f"{fmt(row['values']['project'])} vs direct {fmt(row['values']['direct'])} = {row['ratio_direct']:.2f}x")
        absolute(sc, "cpu_us_per_unit", 450, f"{sc} proxy CPU ≤ 450 µs per MB", "µs/MB")
    vs_best_peer("connect_rate", "rate", 2.0, "new CONNECT tunnels/s ≥ 2x the best peer")
    vs_best_peer("socks5_rate", "rate", 1.4, "new SOCKS5 connections/s ≥ 1.4x the best peer")
    for sc in ("http_forward", "connect_rate", "socks5_rate"):
        vs_best_peer(sc, "p99_ms", 1.0, f"{sc} p99 latency ≤ the best peer's")
    peaks = [(r["scenario"], r["values"]["project"]) for r in rows
             if r["metric"] == "peak_rss_mib" and r["values"]["project"] is not None]
    if peaks:
        worst = max(peaks, key=lambda x: x[1])
        add("peak RSS < 24 MiB in every scenario", "met" if worst[1] < 24 else "missed",
            f"highest {fmt(worst[1])} MiB ({worst[0]})")
    else:
        add("peak RSS < 24 MiB in every scenario", "not run", "")
    absolute("idle_connect_10k", "rss_10k_mib", 100, "RSS with 10,000 idle CONNECT tunnels < 100 MiB", "MiB")
    idle = results.get("idle_connect_10k", {}).get("project", {})
    if idle.get("status") == "ok" and out[-1]["status"] in ("met", "missed"):
        if idle["opened"] < 10000:
            out[-1]["status"] += " (scaled)"
            out[-1]["detail"] += (f"; measured with {idle['opened']:,} tunnels held ({idle['rss_mib']:.1f} MiB), "
                                  f"{idle['per_tunnel_kib']:.1f} KiB each, scaled to 10,000")
            if idle["opened"] < idle["tried"]:
                err = (idle.get("first_error") or "").split("\\r")[0]
                out[-1]["detail"] += f"; only {idle['opened']:,} of {idle['tried']:,} could be opened ({err})"
    return out


def targets_table(targets: list[dict]) -> str:
    out = ["| target | result | this run |", "|---|---|---|"]
    for t in targets:
        detail = t["detail"].replace("|", "\\|").replace("\r", "").replace("\n", " ")
        out.append(f"| {t['target']} | {t['status']} | {detail} |")
    return "\n".join(out)


FOOTNOTE = (f"`*`: other processes on the machine used more than {NOISY_CORES} of a core during that "
            "measurement (see `foreign_cpu_cores` in the JSON); judge such cells by CPU per unit. "
            "↑ higher is better, ↓ lower is better. Ratios are this project / the best peer "
            "(best = highest for ↑, lowest for ↓) and this project / direct.")


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    deb = ""
    try:
        with open("/etc/debian_version") as f:
            deb = f.read().strip()
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(), "debian": deb, "memory": mem,
            "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}


def git_state() -> dict:
    """The commit measured (read-only git queries)."""
    out = {}
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, timeout=10)
        if r.returncode == 0:
            out["commit"] = r.stdout.decode().strip()
        r = subprocess.run(["git", "--no-optional-locks", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            out["dirty"] = bool(r.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def versions(peers: list[str]) -> dict:
    out = {}
    for pkg in ["wrk", "nginx"] + [PEERS[p]["pkg"] if p != "nginx" else "libnginx-mod-stream" for p in peers]:
        try:
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, timeout=10)
            if v.returncode == 0:
                out[pkg] = v.stdout.decode().strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny counts, 1 s per cell")
    ap.add_argument("--bin", required=True, help="the g3proxy binary under test")
    ap.add_argument("--loadgen", required=True, help="the px-bench-loadgen binary")
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench", "result.json"))
    ap.add_argument("--md", default=None, help="also write the tables here (default: JSON path with .md)")
    ap.add_argument("--peers", default="all", help="comma list of peers, `all` or `none`")
    ap.add_argument("--only", default="", help="comma list of scenarios")
    ap.add_argument("--duration", type=float, default=0, help="seconds of load per cell (overrides the mode)")
    ap.add_argument("--http-conns", type=int, default=0, help="wrk connections of http_forward (overrides the mode)")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="before each cell, wait up to this many seconds for other processes to go quiet")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="another g3proxy build measured as its own column (e.g. io-uring=target/uring/release/g3proxy)")
    ap.add_argument("--retry-noisy", type=int, default=None,
                    help="measure a cell again (up to N times) when other processes used more than "
                         f"{NOISY_CORES} of a core meanwhile (default: 1, quick mode 0)")
    ap.add_argument("--budget", type=float, default=240,
                    help="seconds after which --wait-quiet and --retry-noisy stop, so a busy machine "
                         "does not stretch the run (default 240)")
    ap.add_argument("--keep", action="store_true", help="keep the temp work dir")
    ap.add_argument("--cmdline", default="", help="the command line to record")
    args = ap.parse_args()
    if args.retry_noisy is None:
        args.retry_noisy = 0 if args.quick else 1
    args.bin = os.path.abspath(args.bin)
    args.variants = {}
    for v in args.variant:
        name, _, path = v.partition("=")
        if not name or not path or not os.path.isfile(path):
            ap.error(f"--variant wants NAME=PATH of an existing binary, got {v!r}")
        args.variants[f"project:{name}"] = os.path.abspath(path)
    args.loadgen = os.path.abspath(args.loadgen)

    if args.peers == "all":
        args.peer_set = set(PEER_ORDER)
    elif args.peers in ("none", ""):
        args.peer_set = set()
    else:
        args.peer_set = set(args.peers.split(","))
        unknown = args.peer_set - set(PEER_ORDER)
        if unknown:
            ap.error(f"unknown peers {sorted(unknown)} (known: {', '.join(PEER_ORDER)})")
    if args.only:
        unknown = set(args.only.split(",")) - {s["name"] for s in SCENARIOS}
        if unknown:
            ap.error(f"unknown scenarios {sorted(unknown)}")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.time()
    load0 = open("/proc/loadavg").read().split()[:3]
    foreign0 = foreign_cpu_seconds()
    bench = Bench(args)
    code = 0
    try:
        bench.setup()
        bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    finally:
        bench.teardown()

    peer_cols = [p for p in PEER_ORDER if any(p in res for res in bench.results.values())]
    rows = build_rows(bench.results, peer_cols, list(args.variants))
    targets = check_targets(rows, bench.results)
    table = markdown_table(rows, peer_cols, list(args.variants))
    ttable = targets_table(targets)
    meta = {"started": started.isoformat(timespec="seconds"), "seconds": round(time.time() - t0, 1),
            "mode": "quick" if args.quick else "short", "command": args.cmdline or " ".join(sys.argv),
            "binary": args.bin, "git": git_state(), "variants": args.variants, "machine": machine(), "versions": versions(peer_cols),
            "load": bench.mode, "proxy_core": PROXY_CORE, "load_core": LOAD_CORE,
            "loadavg_start": load0, "loadavg_end": open("/proc/loadavg").read().split()[:3],
            "foreign_cpu_cores": round((foreign_cpu_seconds() - foreign0) / max(time.time() - t0, 1e-3), 3)}
    scen = []
    for sc in SCENARIOS:
        if sc["name"] in bench.results:
            scen.append({"name": sc["name"], "title": sc["title"], "unit": sc["unit"],
                         "subjects": bench.results[sc["name"]]})
    doc = {"meta": meta, "scenarios": scen, "rows": rows, "targets": targets}

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    # one line per cell, for tests/tests/bench_quick.rs (which has no JSON parser):
    # scenario <TAB> subject <TAB> status <TAB> headline number (or "-")
    with open(os.path.splitext(args.json)[0] + ".tsv", "w") as f:
        for sc in scen:
            for subj, r in sc["subjects"].items():
                key = metric_rows(next(x for x in SCENARIOS if x["name"] == sc["name"]))[0][0]
                v = r.get(key) if r.get("status") == "ok" else None
                f.write(f"{sc['name']}\t{subj}\t{r.get('status')}\t{'-' if v is None else v}\n")
    md_path = args.md or os.path.splitext(args.json)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(f"{table}\n\n{FOOTNOTE}\n\n{ttable}\n")

    print(table)
    print()
    print(FOOTNOTE)
    print()
    print(ttable)
    print()
    log(f"done in {meta['seconds']}s; JSON: {args.json}; Markdown: {md_path}")

    # direct and this project must have worked wherever they apply
    for sc in scen:
        for subj in ["direct", "project"] + list(args.variants):
            st = sc["subjects"].get(subj, {}).get("status")
            if st == "failed":
                log(f"FAILED: {sc['name']} / {subj}: {sc['subjects'][subj].get('detail')}")
                code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
