#!/usr/bin/python3
"""The client side of bench/scale.sh: many users through one gateway, from one process.

Run with Debian's /usr/bin/python3 (python3-asyncssh). Two subcommands:

  keys DIR N        writes N Ed25519 key pairs DIR/u0001 (+ .pub) ... for the users
  run ...           every phase of the benchmark against a running gateway; prints a
                    table and writes the figures as JSON (see --help)

Phases of `run`, in order: the gateway's idle figures; every user logs in once and runs
`true` (creating their workspace); the workspaces are stopped; `docker start` alone
(Engine API) for the same stopped containers at the same concurrency, wall time; stopped
again; every user logs in through the gateway, C at a time, and keeps one pty session
running `cat` (raw mode); the gateway's figures with all sessions open; the same users
also log in straight to each workspace's sshd (the gateway's upstream key); typing at a
set total rate, one byte at a time, each byte timed until it is echoed, through the
gateway and straight to sshd taking turns each second (so the echo latency the gateway
adds is a ratio of figures taken over the same stretch of time on the same machine);
every session closed, figures at once and 10 s later.

It checks what it measured (every login and command succeeded, every echo came back and
matched what was typed) and exits 1 otherwise. Timings are reported, never asserted.
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")  # Debian's asyncssh imports ciphers cryptography deprecates
import asyncssh  # noqa: E402

READY = b"SCALE-READY"
# Raw mode and no echo from the terminal: each typed byte comes back once, from cat.
SESSION_COMMAND = "stty raw -echo; printf SCALE-READY; exec cat"
KEYS = b"abcdefghijklmnopqrstuvwxyz0123456789"


def user_name(i):
    return "u%04d" % (i + 1)


# ---------------------------------------------------------------------------- keys

def write_keys(directory, count):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        key = asyncssh.generate_private_key("ssh-ed25519", comment=user_name(i))
        path = os.path.join(directory, user_name(i))
        key.write_private_key(path)
        os.chmod(path, 0o600)
        key.write_public_key(path + ".pub")


# ---------------------------------------------------------------------------- measuring

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary(values):
    if not values:
        return None
    return {"count": len(values), "p50": round(percentile(values, 50), 4), "p99": round(percentile(values, 99), 4),
            "max": round(max(values), 4), "mean": round(sum(values) / len(values), 4)}


def process_stats(pid):
    """RSS, threads and open descriptors of the gateway, from /proc."""
    stats = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                stats["rss_mib"] = round(int(value.split()[0]) / 1024, 1)
            elif key == "Threads":
                stats["threads"] = int(value)
    stats["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return stats


def process_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPUMeter:
    """CPU share of this process (and optionally another) over an interval."""

    def __init__(self, other_pid=None):
        self.other_pid = other_pid
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.other = process_cpu_seconds(other_pid) if other_pid else None

    def result(self):
        wall = time.perf_counter() - self.wall
        result = {"wall_s": round(wall, 3), "client_cpu_percent": round(100 * (time.process_time() - self.own) / wall, 1)}
        if self.other_pid:
            result["gateway_cpu_percent"] = round(100 * (process_cpu_seconds(self.other_pid) - self.other) / wall, 1)
        return result


async def limited(items, concurrency, work):
    """Runs work(item) for every item, at most `concurrency` at once; returns the wall time
    and the results (an exception object where one failed)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item):
        async with gate:
            try:
                return await work(item)
            except Exception as error:  # noqa: BLE001 - reported per item
                return error

    start = time.perf_counter()
    results = await asyncio.gather(*(one(item) for item in items))
    return time.perf_counter() - start, results


# ---------------------------------------------------------------------------- Engine API

class Engine:
    """Just enough of the Docker Engine API over its unix socket (one connection per call)."""

    def __init__(self, socket_path):
        self.socket_path = socket_path

    async def request(self, method, path):
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        try:
            writer.write(("%s %s HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                          % (method, path)).encode())
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        return status, body

    async def start(self, name):
        status, body = await self.request("POST", "/containers/%s/start" % name)
        if status not in (204, 304):
            raise RuntimeError("start %s: HTTP %d %s" % (name, status, body[:200]))

    async def stop(self, name):
        status, body = await self.request("POST", "/containers/%s/stop?t=10" % name)
        if status not in (204, 304):
            raise RuntimeError("stop %s: HTTP %d %s" % (name, status, body[:200]))

    async def running(self, name):
        status, body = await self.request("GET", "/containers/%s/json" % name)
        if status != 200:
            raise RuntimeError("inspect %s: HTTP %d %s" % (name, status, body[:200]))
        return json.loads(body)["State"]["Running"]


def dechunk(body):
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return bytes(out)


# ---------------------------------------------------------------------------- sessions

class EchoSession(asyncssh.SSHClientSession):
    """One interactive session: waits for the ready marker, then matches every byte that
    comes back with the oldest byte typed and not yet echoed."""

    def __init__(self):
        self.buffer = b""
        self.ready = asyncio.get_event_loop().create_future()
        self.closed = asyncio.get_event_loop().create_future()
        self.pending = []  # [(byte, time typed)], oldest first
        self.head = 0
        self.latencies = []
        self.mismatches = 0
        self.unexpected = 0

    def data_received(self, data, datatype):
        now = time.perf_counter()
        if not self.ready.done():
            self.buffer += data
            index = self.buffer.find(READY)
            if index < 0:
                return
            data = self.buffer[index + len(READY):]
            self.buffer = b""
            self.ready.set_result(now)
        for byte in data:
            if self.head >= len(self.pending):
                self.unexpected += 1
                continue
            typed, at = self.pending[self.head]
            self.head += 1
            if byte != typed:
                self.mismatches += 1
            self.latencies.append(now - at)
        if self.head > 1024:
            del self.pending[:self.head]
            self.head = 0

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_exception(exc or RuntimeError("session closed before it was ready"))
        if not self.closed.done():
            self.closed.set_result(exc)

    @property
    def outstanding(self):
        return len(self.pending) - self.head


class Bench:
    def __init__(self, args):
        self.args = args
        self.users = [user_name(i) for i in range(args.users)]
        self.engine = Engine(args.docker_socket)
        self.errors = []
        self.result = {"parameters": {"users": args.users, "concurrency": args.concurrency,
                                      "rate_keys_per_s": args.rate, "typing_s": args.duration},
                       "machine": {"cpus": os.cpu_count(), "loadavg_at_start": open("/proc/loadavg").read().split()[:3]}}

    def container(self, user):
        return "%s-%s" % (self.args.prefix, user)

    def key_path(self, user):
        return os.path.join(self.args.keys, user)

    async def connect(self, user):
        return await asyncssh.connect(
            self.args.host, self.args.port, username=user, client_keys=[self.key_path(user)],
            known_hosts=None, agent_path=None, config=[], preferred_auth="publickey",
            login_timeout=600, keepalive_interval=0)

    async def connect_direct(self, user):
        """Straight to the workspace's sshd, as the gateway's upstream hop does. No
        compression: the gateway grants none either (its default)."""
        status, body = await self.engine.request("GET", "/containers/%s/json" % self.container(user))
        if status != 200:
            raise RuntimeError("inspect %s: HTTP %d" % (user, status))
        address = json.loads(body)["NetworkSettings"]["Networks"][self.args.prefix]["IPAddress"]
        return await asyncssh.connect(
            address, 22, username=user, client_keys=[self.args.upstream_key], known_hosts=None,
            agent_path=None, config=[], preferred_auth="publickey", compression_algs=["none"],
            login_timeout=600, keepalive_interval=0)

    async def close_all(self, sessions):
        for s in sessions:
            s["conn"].close()
        await asyncio.gather(*(s["conn"].wait_closed() for s in sessions), return_exceptions=True)

    def fail(self, what, results):
        failed = [(user, r) for user, r in zip(self.users, results) if isinstance(r, Exception)]
        for user, error in failed[:5]:
            self.errors.append("%s %s: %s" % (what, user, error or type(error).__name__))
        if len(failed) > 5:
            self.errors.append("%s: %d more failed" % (what, len(failed) - 5))
        return len(failed)

    async def create_one(self, user):
        async with await self.connect(user) as conn:
            result = await conn.run("true")
            if result.exit_status != 0:
                raise RuntimeError("`true` exited %s" % result.exit_status)

    async def stop_all(self, what):
        wall, results = await limited(self.users, self.args.concurrency, lambda u: self.engine.stop(self.container(u)))
        failed = self.fail(what, results)
        _, running = await limited(self.users, self.args.concurrency, lambda u: self.engine.running(self.container(u)))
        still = [u for u, r in zip(self.users, running) if r is not False]
        if still:
            self.errors.append("%s: %d containers still running or not inspectable (%s...)" % (what, len(still), still[0]))
        return wall, failed + len(still)

    async def login_one(self, user, direct=False):
        start = time.perf_counter()
        conn = await (self.connect_direct(user) if direct else self.connect(user))
        try:
            authenticated = time.perf_counter()
            chan, session = await conn.create_session(EchoSession, SESSION_COMMAND, term_type="xterm",
                                                      term_size=(80, 24), encoding=None)
            opened = time.perf_counter()
            ready = await asyncio.wait_for(session.ready, 60)
        except BaseException:
            conn.close()
            raise
        return {"user": user, "conn": conn, "chan": chan, "session": session,
                "auth_s": authenticated - start, "session_s": opened - start, "login_s": ready - start}

    async def type_keys(self, groups):
        """Types at the set rate, round-robin over one group's sessions at a time, for the set
        duration per group. With two groups (through the gateway, straight to sshd) the
        groups take turns in one-second slices, so both see the same machine: on a busy
        machine, typing one group after the other compares two different moments."""
        rate, duration = self.args.rate, self.args.duration
        state = {name: {"typed": 0, "wall": 0.0, "client": 0.0, "gateway": 0.0} for name in groups}
        slice_s = 1.0
        while any(st["wall"] < duration - 1e-6 for st in state.values()):
            for name, sessions in groups.items():
                st = state[name]
                length = min(slice_s, duration - st["wall"])
                if length <= 1e-6:
                    continue
                meter = CPUMeter(self.args.gateway_pid)
                start = time.perf_counter()
                base = st["typed"]
                while True:
                    now = time.perf_counter()
                    if now - start >= length:
                        break
                    due = base + int((now - start) * rate)
                    while st["typed"] < due:
                        typed = st["typed"]
                        s = sessions[typed % len(sessions)]
                        byte = KEYS[(typed // len(sessions)) % len(KEYS)]
                        s["session"].pending.append((byte, time.perf_counter()))
                        s["chan"].write(bytes((byte,)))
                        st["typed"] += 1
                    await asyncio.sleep(0.001)
                used = meter.result()
                st["wall"] += used["wall_s"]
                st["client"] += used["client_cpu_percent"] * used["wall_s"]
                st["gateway"] += used.get("gateway_cpu_percent", 0) * used["wall_s"]
        # Every byte typed must come back; give the stragglers a few seconds.
        everyone = [s for sessions in groups.values() for s in sessions]
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and any(s["session"].outstanding for s in everyone):
            await asyncio.sleep(0.05)
        results = {}
        for name, sessions in groups.items():
            st = state[name]
            latencies = [x for s in sessions for x in s["session"].latencies]
            lost = sum(s["session"].outstanding for s in sessions)
            mismatched = sum(s["session"].mismatches for s in sessions)
            unexpected = sum(s["session"].unexpected for s in sessions)
            if lost or mismatched or unexpected:
                self.errors.append("echo (%s): %d of %d bytes not echoed, %d mismatched, %d unexpected"
                                   % (name, lost, st["typed"], mismatched, unexpected))
            ms = summary([x * 1000 for x in latencies]) or {}
            wall = st["wall"] or 1
            results[name] = dict(wall_s=round(st["wall"], 3), client_cpu_percent=round(st["client"] / wall, 1),
                                 gateway_cpu_percent=round(st["gateway"] / wall, 1), typed=st["typed"],
                                 echoed=len(latencies), achieved_rate=round(st["typed"] / wall, 1),
                                 lost=lost, mismatched=mismatched, unexpected=unexpected,
                                 p50_ms=ms.get("p50"), p99_ms=ms.get("p99"), max_ms=ms.get("max"))
        return results

    async def settle(self, idle_threads, timeout=30):
        """Waits until the gateway's thread count is back to its idle count (every
        connection thread gone), at most `timeout` s; returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if process_stats(self.args.gateway_pid)["threads"] <= idle_threads:
                break
            await asyncio.sleep(0.1)
        return time.perf_counter() - start

    async def run(self):
        args, r, pid = self.args, self.result, self.args.gateway_pid
        r["gateway_idle"] = process_stats(pid)
        idle_threads = r["gateway_idle"]["threads"]
        log("idle: %s" % r["gateway_idle"])

        log("creating %d workspaces (one login each, %d at a time)" % (len(self.users), args.concurrency))
        wall, results = await limited(self.users, args.concurrency, self.create_one)
        r["create"] = {"wall_s": round(wall, 3), "failed": self.fail("create", results)}
        await self.settle(idle_threads)
        r["gateway_after_create"] = process_stats(pid)

        log("stopping them")
        await self.stop_all("stop")
        log("baseline: starting the %d stopped containers through the Engine API, %d at a time"
            % (len(self.users), args.concurrency))
        wall, results = await limited(self.users, args.concurrency, lambda u: self.engine.start(self.container(u)))
        r["docker_start"] = {"wall_s": round(wall, 3), "failed": self.fail("docker start", results)}
        await self.stop_all("stop again")

        log("logging in %d users from stopped workspaces, %d at a time" % (len(self.users), args.concurrency))
        meter = CPUMeter(pid)
        wall, results = await limited(self.users, args.concurrency, self.login_one)
        cpu = meter.result()
        sessions = [x for x in results if not isinstance(x, Exception)]
        logins = summary([s["login_s"] for s in sessions]) or {}
        auths = summary([s["auth_s"] for s in sessions]) or {}
        r["login"] = {"wall_s": round(wall, 3), "ok": len(sessions), "failed": self.fail("login", results),
                      "p50_s": logins.get("p50"), "p99_s": logins.get("p99"), "max_s": logins.get("max"),
                      "auth_p50_s": auths.get("p50"), "auth_p99_s": auths.get("p99"),
                      "client_cpu_percent": cpu["client_cpu_percent"], "gateway_cpu_percent": cpu["gateway_cpu_percent"]}
        r["login"]["wall_ratio_to_docker_start"] = round(wall / r["docker_start"]["wall_s"], 2)
        log("logins: %s" % {k: v for k, v in r["login"].items()})

        await asyncio.sleep(2)
        r["gateway_sessions_open"] = process_stats(pid)
        log("%d sessions open: %s" % (len(sessions), r["gateway_sessions_open"]))

        direct = []
        if args.upstream_key and sessions:
            log("logging in the same %d users straight to their workspaces' sshd" % len(sessions))
            _, results = await limited([s["user"] for s in sessions], args.concurrency,
                                       lambda u: self.login_one(u, direct=True))
            direct = [x for x in results if not isinstance(x, Exception)]
            direct_failed = self.fail("direct login", results)
        if sessions:
            groups = {"gateway": sessions}
            if direct:
                groups["direct"] = direct
            log("typing %d keys/s over %d sessions for %s s%s" % (
                args.rate, len(sessions), args.duration,
                ", taking turns each second with the same typing straight to sshd" if direct else ""))
            echoes = await self.type_keys(groups)
            r["echo"] = echoes["gateway"]
            log("echo: %s" % r["echo"])
            if direct:
                r["echo_direct"] = dict(echoes["direct"], failed_logins=direct_failed)
                log("echo direct: %s" % r["echo_direct"])
                if r["echo_direct"]["p99_ms"]:
                    r["echo"]["p99_ratio_to_direct"] = round(r["echo"]["p99_ms"] / r["echo_direct"]["p99_ms"], 2)
                    r["echo"]["p50_ratio_to_direct"] = round(r["echo"]["p50_ms"] / r["echo_direct"]["p50_ms"], 2)
        else:
            r["echo"] = None
        r["gateway_after_typing"] = process_stats(pid)

        await self.close_all(direct)
        log("closing every session")
        await self.close_all(sessions)
        waited = await self.settle(idle_threads)
        r["gateway_after_close"] = dict(process_stats(pid), settled_after_s=round(waited, 1))
        if r["gateway_after_close"]["threads"] > idle_threads:
            self.errors.append("close: the gateway still has %d threads %.0f s after every session closed (idle: %d)"
                               % (r["gateway_after_close"]["threads"], waited, idle_threads))
        await asyncio.sleep(10)
        r["gateway_after_close_10s"] = process_stats(pid)
        r["errors"] = self.errors
        r["ok"] = not self.errors
        return r


def log(text):
    print("scale: " + text, file=sys.stderr, flush=True)


def fmt(value, unit="", digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return ("%." + str(digits) + "f%s") % (value, unit)
    return "%s%s" % (value, unit)


def table(r):
    rows = []
    p = r["parameters"]
    rows.append(("users / concurrency / typing rate", "%d / %d / %d keys/s" % (p["users"], p["concurrency"], p["rate_keys_per_s"])))
    rows.append(("load average at start", " ".join(r["machine"]["loadavg_at_start"])))
    for key, label in [("gateway_idle", "gateway idle"), ("gateway_sessions_open", "gateway, all sessions open"),
                       ("gateway_after_typing", "gateway, after typing"), ("gateway_after_close", "gateway, all closed"),
                       ("gateway_after_close_10s", "gateway, 10 s after close")]:
        s = r.get(key)
        if s:
            rows.append((label, "RSS %.1f MiB, %d threads, %d fds" % (s["rss_mib"], s["threads"], s["fds"])))
    d, l = r["docker_start"], r["login"]
    rows.append(("docker start alone (Engine API), wall", fmt(d["wall_s"], " s")))
    rows.append(("gateway logins from stopped, wall", fmt(l["wall_s"], " s")))
    rows.append(("  ratio logins / docker start", fmt(l["wall_ratio_to_docker_start"], "", 2)))
    rows.append(("  logins ok / failed", "%d / %d" % (l["ok"], l["failed"])))
    rows.append(("  login p50 / p99 / max", "%s / %s / %s" % (fmt(l["p50_s"], " s"), fmt(l["p99_s"], " s"), fmt(l["max_s"], " s"))))
    rows.append(("  authenticated p50 / p99", "%s / %s" % (fmt(l["auth_p50_s"], " s"), fmt(l["auth_p99_s"], " s"))))
    rows.append(("  CPU during logins: client / gateway", "%s%% / %s%%" % (l["client_cpu_percent"], l["gateway_cpu_percent"])))
    e = r.get("echo")
    if e:
        rows.append(("keystrokes typed / echoed (rate)", "%d / %d (%.0f keys/s)" % (e["typed"], e["echoed"], e["achieved_rate"])))
        rows.append(("  echo p50 / p99 / max", "%s / %s / %s" % (fmt(e["p50_ms"], " ms", 2), fmt(e["p99_ms"], " ms", 2), fmt(e["max_ms"], " ms", 2))))
        note = "  (client above 80%: echo figures are partly client-bound)" if e["client_cpu_percent"] > 80 else ""
        rows.append(("  CPU while typing: client / gateway", "%s%% / %s%%%s" % (e["client_cpu_percent"], e["gateway_cpu_percent"], note)))
    d = r.get("echo_direct")
    if d:
        rows.append(("direct to sshd: typed / echoed", "%d / %d (%.0f keys/s)" % (d["typed"], d["echoed"], d["achieved_rate"])))
        rows.append(("  echo p50 / p99 / max", "%s / %s / %s" % (fmt(d["p50_ms"], " ms", 2), fmt(d["p99_ms"], " ms", 2), fmt(d["max_ms"], " ms", 2))))
        rows.append(("  CPU while typing: client", "%s%%" % d["client_cpu_percent"]))
        if e and "p99_ratio_to_direct" in e:
            rows.append(("  echo via gateway / direct: p50, p99", "%s, %s" % (fmt(e["p50_ratio_to_direct"], "", 2), fmt(e["p99_ratio_to_direct"], "", 2))))
    rows.append(("checks", "all passed" if r["ok"] else "FAILED: " + "; ".join(r["errors"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join("%-*s  %s" % (width, k, v) for k, v in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys")
    keys.add_argument("dir")
    keys.add_argument("count", type=int)
    run = sub.add_parser("run")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--users", type=int, required=True)
    run.add_argument("--keys", required=True, help="directory written by `keys`")
    run.add_argument("--prefix", required=True, help="the gateway's DEVENV_GW_PREFIX")
    run.add_argument("--gateway-pid", type=int, required=True)
    run.add_argument("--concurrency", type=int, default=20)
    run.add_argument("--rate", type=float, default=1000, help="keys per second over all sessions")
    run.add_argument("--duration", type=float, default=30, help="seconds of typing")
    run.add_argument("--docker-socket", default="/var/run/docker.sock")
    run.add_argument("--json", help="also write the figures to this file")
    run.add_argument("--upstream-key", help="the gateway's upstream key: also type straight to each sshd")
    args = parser.parse_args()

    if args.command == "keys":
        write_keys(args.dir, args.count)
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(Bench(args).run())
    print(table(result))
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
