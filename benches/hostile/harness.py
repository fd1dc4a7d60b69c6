"""Server processes, /proc sampling, and the rows of the result table.

One `Row` per table line: it starts its own server (pinned to core 0 with
taskset, on a free loopback port), samples VmRSS, descriptors and CPU time
every ~50 ms, and always kills the server by PID when it ends.
"""

import ctypes
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import net

SAMPLE_EVERY = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

# Every server this process started and has not reaped yet: killed on any
# way out (normal end, exception, SIGINT/SIGTERM, the global budget).
_LIVE = {}
_LIVE_LOCK = threading.Lock()


def kill_all_servers():
    with _LIVE_LOCK:
        servers = list(_LIVE.values())
    for server in servers:
        p = server.proc
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def proc_cpu_s(pid):
    """utime + stime of the whole process, seconds (clock-tick resolution)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_runtime_s(pid):
    """Sum of the threads' on-CPU time from schedstat (ns resolution)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return total / 1e9


def core_times(core):
    """(busy, total) jiffies of one CPU from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu%d " % core):
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    return sum(v) - idle, sum(v)
    except (OSError, ValueError):
        pass
    return None


class Server:
    """`taskset -c 0 BINARY MODE --host 127.0.0.1 --port P ARGS`."""

    def __init__(self, binary, mode, args, nofile=None):
        self.binary = binary
        self.mode = mode
        self.args = list(args)
        self.nofile = nofile
        self.port = free_port()
        self.proc = None
        self._stderr = None

    def label(self):
        parts = []
        if self.nofile:
            parts.append("ulimit -n %d;" % self.nofile)
        parts.append("rtwire %s" % self.mode)
        parts.extend(shlex.quote(a) for a in self.args)
        return " ".join(parts)

    def command(self):
        return (["taskset", "-c", "0", self.binary, self.mode, "--host", "127.0.0.1",
                 "--port", str(self.port)] + self.args)

    def start(self, ready_timeout=10.0):
        nofile = self.nofile

        def child_setup():
            # Dies with the harness even if the harness is killed hard.
            if _LIBC is not None:
                _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        # The server's stderr goes to an unlinked temporary file: nothing is
        # left behind however the harness ends; size and head via the fd.
        fd, path = tempfile.mkstemp(prefix="rtwire-hostile-", suffix=".stderr")
        os.unlink(path)
        self._stderr = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     preexec_fn=child_setup, close_fds=True)
        with _LIVE_LOCK:
            _LIVE[self.proc.pid] = self
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited at start (code %s): %s" %
                                   (self.proc.returncode, self.stderr_head()))
            try:
                s = net.connect(self.port, timeout=0.5)
                s.close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not listen within %.0f s" % ready_timeout)
        # taskset execs the binary: the PID is the server's.
        try:
            exe = os.readlink("/proc/%d/exe" % self.proc.pid)
            if os.path.basename(exe) == "taskset":
                raise RuntimeError("taskset did not exec the server")
        except OSError:
            pass
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_bytes(self):
        try:
            return os.fstat(self._stderr.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            return 0

    def stderr_head(self, n=400):
        try:
            return os.pread(self._stderr.fileno(), n, 0).decode("utf-8", "replace").strip()
        except (OSError, AttributeError, ValueError):
            return ""

    def stop(self):
        if self.proc is not None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            with _LIVE_LOCK:
                _LIVE.pop(self.proc.pid, None)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class Sampler(threading.Thread):
    """VmRSS, descriptor count and CPU time of a PID every ~50 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []  # (t, rss_kb, fds, cpu_s)
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            rss = proc_rss_kb(self.pid)
            if rss is None:
                break
            fds = proc_fds(self.pid)
            cpu = proc_cpu_s(self.pid)
            with self.lock:
                self.samples.append((t, rss, fds, cpu))
            self._halt.wait(SAMPLE_EVERY)

    def stop(self):
        self._halt.set()
        self.join(timeout=2)

    def last(self):
        with self.lock:
            return self.samples[-1] if self.samples else None

    def window(self, t0, t1):
        with self.lock:
            return [s for s in self.samples if t0 <= s[0] <= t1]

    def rss_at(self, t):
        """RSS (MiB) of the last sample at or before t."""
        with self.lock:
            best = None
            for s in self.samples:
                if s[0] <= t:
                    best = s
                else:
                    break
        return best[1] / 1024 if best else None


def mib(kb):
    return "-" if kb is None else "%.0f" % (kb / 1024)


class Row:
    """One line of the table: a server, its samples, the attack's figures."""

    def __init__(self, harness, key, attack, mode, args=(), nofile=None, extra_args=True):
        self.h = harness
        self.key = key
        self.attack = attack
        args = list(args)
        if extra_args:
            args += harness.extra_args(mode)
        self.server = Server(harness.binary, mode, args, nofile=nofile)
        self.mode = mode
        self.sampler = None
        self.t_before = self.t_left = self.t_end = None
        self.before = self.after = None
        self.freed = None
        self.probes = []
        self.figures = []  # (name, value) in order
        self.notes = []
        self.error = None
        self._probe_threads = []

    # -- life cycle -------------------------------------------------
    def __enter__(self):
        self.h.check_budget()
        print("\n### %s. %s" % (self.key, self.attack), flush=True)
        self.server.start()
        print("server: %s (pid %d, port %d)" % (" ".join(self.server.command()),
                                                 self.server.pid, self.server.port), flush=True)
        self.sampler = Sampler(self.server.pid)
        self.sampler.start()
        return self

    def __exit__(self, etype, exc, tb):
        try:
            for t in self._probe_threads:
                t.join(timeout=10)
            if etype is not None and not self._passes(etype):
                self.error = "%s: %s" % (etype.__name__, exc)
                print("attack failed: %s" % self.error, flush=True)
                import traceback
                traceback.print_exception(etype, exc, tb, file=sys.stdout)
            if self.t_left is None and self.t_before is not None:
                # The attack ended early: still report what was seen.
                self.t_left = time.monotonic()
                self.t_end = self.t_left
                self.after = self.sampler.last()
            if not self.server.alive():
                self.notes.append("server died (exit %s)" % self.server.proc.returncode)
        finally:
            if self.sampler is not None:
                self.sampler.stop()
            self.server.stop()
            self.h.rows.append(self)
            self.print_details()
        # An attack's failure is reported in its row; the run goes on.
        return etype is not None and not self._passes(etype)

    @staticmethod
    def _passes(etype):
        return issubclass(etype, (KeyboardInterrupt, SystemExit, BudgetExceeded))

    @property
    def port(self):
        return self.server.port

    @property
    def pid(self):
        return self.server.pid

    def mark_before(self, settle=0.5):
        """The baseline: the server idle after start."""
        time.sleep(settle)
        self.before = self._sample_now()
        self.t_before = time.monotonic()
        print("before: RSS %s MiB, %s fds" % (mib(self.before[1]), self.before[2]), flush=True)

    def _sample_now(self):
        return (time.monotonic(), proc_rss_kb(self.pid), proc_fds(self.pid), proc_cpu_s(self.pid))

    def left(self, until=None, settle=1.0):
        """The attacker has closed everything. Waits until the server's
        descriptors are back to the baseline (and `until()` holds, if
        given), then for RSS to hold still for `settle` s, but no sooner
        than `min_after` s after the attacker left (the binaries hand
        freed pages back every 10 s), at most `after` s in all."""
        self.t_left = time.monotonic()
        limit = self.t_left + self.h.after
        earliest = self.t_left + self.h.min_after
        base_fds = self.before[2]
        while time.monotonic() < limit and self.server.alive():
            fds = proc_fds(self.pid)
            ok = fds is not None and fds <= base_fds
            if until is not None:
                ok = until() and ok
            if ok:
                self.freed = time.monotonic() - self.t_left
                break
            time.sleep(0.1)
        if self.freed is not None:
            # Then until RSS holds still for `settle` s (within 1 MiB).
            recent = []
            while time.monotonic() < limit and self.server.alive():
                now = time.monotonic()
                kb = proc_rss_kb(self.pid)
                if kb is None:
                    break
                recent = [(t, v) for t, v in recent if now - t <= settle] + [(now, kb)]
                values = [v for _, v in recent]
                still = now - recent[0][0] >= settle * 0.95 and max(values) - min(values) < 1024
                if still and now >= earliest:
                    break
                time.sleep(0.1)
        self.after = self._sample_now()
        self.t_end = time.monotonic()

    def rss_now(self):
        kb = proc_rss_kb(self.pid)
        return None if kb is None else kb / 1024

    # -- probes -----------------------------------------------------
    def mark_peak(self):
        """Samples now, so a short attack's high point is never missed
        between two 50 ms samples (probes call it first)."""
        if self.sampler is not None:
            s = self._sample_now()
            if s[1] is not None:
                with self.sampler.lock:
                    self.sampler.samples.append(s)

    def probe(self, label=None, **auth):
        """A fresh client's round trip, now (blocking, at most 5 s)."""
        self.mark_peak()
        t_rel = time.monotonic() - (self.t_before or time.monotonic())
        if self.mode == "echo":
            ok, secs, detail = net.probe_echo(self.port)
        else:
            ok, secs, detail = net.probe_serve(self.port, "%s-%d" % (self.key, len(self.probes)),
                                               **auth)
        label = label or "t+%.0fs" % t_rel
        self.probes.append((label, ok, secs, detail))
        print("fresh client (%s): %s" % (label, self.fmt_probe((label, ok, secs, detail))),
              flush=True)
        return ok

    def probe_async(self, label=None, **auth):
        t = threading.Thread(target=self.probe, kwargs=dict(label=label, **auth), daemon=True)
        t.start()
        self._probe_threads.append(t)
        return t

    @staticmethod
    def fmt_probe(p):
        _, ok, secs, detail = p
        if ok:
            return "yes (%.0f ms)" % (secs * 1000)
        return "no (%s)" % detail

    # -- figures ----------------------------------------------------
    def fig(self, name, value):
        self.figures.append((name, value))
        print("  %s: %s" % (name, value), flush=True)

    def note(self, text):
        """A short attack-specific figure for the table's last column."""
        self.notes.append(text)

    # -- output -----------------------------------------------------
    def cells(self):
        samples = []
        if self.t_before is not None and self.sampler is not None:
            samples = self.sampler.window(self.t_before, self.t_end or time.monotonic())
        before_kb = self.before[1] if self.before else None
        peak_kb = max([s[1] for s in samples] + [before_kb or 0]) if samples else None
        after_kb = self.after[1] if self.after else None
        during = [s[2] for s in samples if s[0] <= (self.t_left or 1e18) and s[2] is not None]
        fds_before = self.before[2] if self.before else None
        fds_during = max(during + ([fds_before] if fds_before is not None else [])) \
            if (during or fds_before is not None) else None
        fds_after = self.after[2] if self.after else None
        if self.t_left is None:
            freed = "-"
        elif self.freed is not None:
            freed = "%.1f s" % self.freed
        else:
            freed = "not within %.0f s" % self.h.after
        probes = "; ".join("%s: %s" % (p[0], self.fmt_probe(p)) if len(self.probes) > 1
                           else self.fmt_probe(p) for p in self.probes) or "-"
        notes = list(self.notes)
        if self.error:
            notes.append("ERROR " + self.error)
        return [self.key, self.attack, "`%s`" % self.server.label(),
                "%s / %s / %s" % (mib(before_kb), mib(peak_kb), mib(after_kb)),
                "%s / %s / %s" % (fds_before if fds_before is not None else "-",
                                  fds_during if fds_during is not None else "-",
                                  fds_after if fds_after is not None else "-"),
                freed, probes, "; ".join(notes).replace("|", "/") or "-"]

    def print_details(self):
        c = self.cells()
        print("row: RSS MiB %s | fds %s | freed %s | fresh client %s" % (c[3], c[4], c[5], c[6]),
              flush=True)


HEADER = ["#", "attack", "server", "RSS MiB before / peak / after",
          "fds before / during / after", "attacker's connections freed",
          "fresh client round trip during the attack", "attack-specific figures"]


def table(rows):
    out = ["| " + " | ".join(HEADER) + " |",
           "| " + " | ".join(["---"] * len(HEADER)) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r.cells()) + " |")
    return "\n".join(out)


class Harness:
    def __init__(self, binary, after, serve_args, echo_args, params, budget, min_after=0.0):
        self.binary = binary
        self.after = max(after, min_after + 2)
        self.min_after = min_after
        self.serve_args = serve_args
        self.echo_args = echo_args
        self.p = params
        self.rows = []
        self.t0 = time.monotonic()
        self.budget = budget

    def extra_args(self, mode):
        return list(self.serve_args if mode == "serve" else self.echo_args)

    def check_budget(self):
        if time.monotonic() - self.t0 > self.budget:
            raise BudgetExceeded()

    def remaining(self):
        return self.budget - (time.monotonic() - self.t0)


class BudgetExceeded(Exception):
    pass


def setup_process():
    """Pin the harness to core 1 and raise its descriptor limit."""
    cpus = os.sched_getaffinity(0)
    if 1 in cpus and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
