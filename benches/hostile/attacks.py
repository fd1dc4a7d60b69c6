"""The twelve attacks. Each function runs one or more table rows; every
row has its own server (see harness.Row). Sizes come from h.p (the
defaults, --quick, --set KEY=VALUE).
"""

import collections
import math
import os
import select
import socket
import statistics
import subprocess
import threading
import time

import net
from harness import Row, core_times, proc_cpu_s, proc_fds, proc_runtime_s

MiB = 1 << 20
LONG_POLL_METRIC = 'rtwire_sessions_open{transport="long_poll"}'
DROPPED_METRIC = "rtwire_subscribers_dropped_total"


def secs(t):
    return "%.1f s" % t


def counts(counter):
    return ", ".join("%s x%d" % (k, v) for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))


def publish_many(port, channel, payload, n, headers=(), deadline_s=120, on_each=None):
    """n POSTs of payload on one keep-alive connection; returns statuses."""
    statuses = collections.Counter()
    s = net.connect(port, timeout=10)
    try:
        r = net.Reader(s)
        req = net.request_bytes("POST", "/channels/%s" % channel, headers, payload)
        stop = time.monotonic() + deadline_s
        for i in range(n):
            if time.monotonic() > stop:
                statuses["time cap"] += 1
                break
            try:
                s.settimeout(10)
                s.sendall(req)
                st, hd, _ = r.response(time.monotonic() + 10)
            except OSError as e:
                statuses["error %s" % e.__class__.__name__] += 1
                break
            statuses[st] += 1
            if on_each:
                on_each(i)
            if hd.get("connection", "").lower() == "close":
                break
    finally:
        s.close()
    return statuses


# ------------------------------------------------------------ 1. pongs

def unread_pongs(h, mode):
    key = "1a" if mode == "serve" else "1b"
    path = "/ws" if mode == "serve" else "/"
    total = h.p["pings"]
    with Row(h, key, "unread pongs: %s masked 125-byte pings, never read (%s)" %
             ("{:,}".format(total), "serve /ws" if mode == "serve" else "echo"), mode) as r:
        r.mark_before()
        s, _ = net.ws_connect(r.port, path)
        batch_n = 1000
        batch = net.frame(0x9, b"p" * 125, key=os.urandom(4)) * batch_n
        sent = 0
        marks = []
        outcome = "all sent"
        t0 = time.monotonic()
        cap = h.p["ping_cap_s"]
        quarter = max(batch_n, total // 4)
        probed = False
        s.settimeout(5)
        try:
            while sent < total:
                if time.monotonic() - t0 > cap:
                    outcome = "stopped at the %d s cap" % cap
                    break
                try:
                    s.sendall(batch)
                except socket.timeout:
                    outcome = "server stopped reading (a send blocked 5 s)"
                    break
                except OSError as e:
                    outcome = "connection closed by server (%s)" % e.__class__.__name__
                    break
                sent += batch_n
                if sent % quarter == 0:
                    marks.append((sent, r.rss_now(), time.monotonic() - t0))
                if not probed and sent >= total // 2:
                    r.probe_async()
                    probed = True
            if not probed:
                r.probe()
            elapsed = time.monotonic() - t0
            time.sleep(1)
            rss_1s = r.rss_now()
            closed = net.peer_closed(s)
            pending = net.unread_bytes(s)
        finally:
            s.close()
        r.left()
        r.fig("pings sent", "~{:,} in {:.1f} s: {}".format(sent, elapsed, outcome))
        r.fig("RSS along the way", ", ".join("%s pings: %.0f MiB (%.1f s)" % ("{:,}".format(n), m, t)
                                             for n, m, t in marks) or "-")
        r.fig("RSS 1 s after the last ping", "%.0f MiB" % rss_1s if rss_1s else "-")
        r.fig("pong bytes waiting unread in the client", "{:,}".format(pending))
        r.fig("server closed the connection", "yes" if closed else "no")
        r.note("~{:,} pings sent: {}".format(sent, outcome))
        if marks:
            r.note("RSS " + " → ".join("%.0f" % m for _, m, _ in marks) + " MiB at each quarter")
        r.note("closed by server: %s" % ("yes" if closed else "no"))


# --------------------------------------------------- 2. poll amplification

def poll_amplification(h):
    n, size, nconn = h.p["poll_msgs"], h.p["poll_msg_bytes"], h.p["poll_conns"]
    with Row(h, "2", "poll amplification: %d x %d MiB of 0x01, %d unread GET /poll" %
             (n, size // MiB, nconn), "serve") as r:
        r.mark_before()
        st = publish_many(r.port, "c", b"\x01" * size, n)
        r.fig("publish statuses", counts(st))
        rss_published = r.rss_now()
        conns = []
        try:
            for i in range(nconn):
                s = net.connect(r.port, src=net.source_address(i))
                s.sendall(net.request_bytes("GET", "/channels/c/poll"))
                conns.append(s)
            t0 = time.monotonic()
            r.probe()
            while time.monotonic() - t0 < h.p["hold_s"]:
                time.sleep(0.1)
            pending = [net.unread_bytes(s) for s in conns]
            rss_held = r.rss_now()
        finally:
            for s in conns:
                s.close()
        r.left()
        r.fig("RSS after publishing / while the polls were held", "%.0f / %.0f MiB" %
              (rss_published, rss_held))
        r.fig("bytes already in each client's receive queue", ", ".join("{:,}".format(p) for p in pending))
        # A reading client, after the measurement: how big one answer is.
        try:
            s = net.connect(r.port, timeout=30)
            try:
                s.sendall(net.request_bytes("GET", "/channels/c/poll"))
                st, hd, length = net.Reader(s).response(time.monotonic() + 60, keep_body=False)
            finally:
                s.close()
            ratio = length / float(n * size)
            r.fig("one poll answer", "status %d, %.1f MiB for %d MiB of history (%.1fx)" %
                  (st, length / MiB, n * size // MiB, ratio))
            r.note("one answer: %.0f MiB (%.1fx the history)" % (length / MiB, ratio))
        except OSError as e:
            r.fig("one poll answer", "not read: %s" % e)


# ------------------------------------------- 3. history pins read buffers

def history_pins(h):
    rounds = h.p["pin_rounds"]
    with Row(h, "3", "history pins read buffers: %d x (1 MiB POST to a, 1-byte POST to b), "
             "one keep-alive connection" % rounds, "serve") as r:
        r.mark_before()
        statuses = collections.Counter()
        big = net.request_bytes("POST", "/channels/a", body=b"x" * MiB)
        small = net.request_bytes("POST", "/channels/b", body=b"y")
        s = net.connect(r.port, timeout=10)
        t0 = time.monotonic()
        try:
            rd = net.Reader(s)
            for i in range(rounds):
                if time.monotonic() - t0 > 120:
                    statuses["time cap"] += 1
                    break
                try:
                    for req in (big, small):
                        s.sendall(req)
                        st, _, _ = rd.response(time.monotonic() + 10)
                        statuses[st] += 1
                except OSError as e:
                    statuses["error %s" % e.__class__.__name__] += 1
                    break
            if rounds:
                r.probe()
        finally:
            s.close()
        r.left()
        retained = (r.after[1] - r.before[1]) / 1024
        r.fig("statuses", counts(statuses))
        r.fig("retained after the connection closed", "%+.0f MiB" % retained)
        r.note("retained %+.0f MiB after" % retained)
        r.note("statuses: %s" % counts(statuses))


# -------------------------------------------------- 4. slow subscribers

def _watch_closures(watched, t0, results):
    for name, s in watched:
        if name not in results and net.peer_closed(s):
            results[name] = time.monotonic() - t0


def slow_subscribers(h, key):
    if key == "4a":
        n = h.p["slow_msgs"]
        title = "slow subscriber: 1 unread SSE, %d x 1 MiB published" % n
    else:
        n = h.p["slow2_msgs"]
        title = "two slow subscribers (1 SSE + 1 /ws join, never read), %d x 1 MiB" % n
    channel = "s" if key == "4a" else "s2"
    with Row(h, key, title, "serve") as r:
        r.mark_before()
        watched = []
        try:
            sse = net.connect(r.port)
            sse.sendall(net.request_bytes("GET", "/channels/%s/events" % channel))
            watched.append(("SSE", sse))
            if key == "4b":
                ws, _ = net.ws_connect(r.port, "/ws")
                ws.sendall(net.frame(0x1, ('{"op":"join","channel":"%s"}' % channel).encode()))
                watched.append(("WebSocket", ws))
            time.sleep(0.5)
            closed = {}
            closed_after_msgs = {}
            t0 = time.monotonic()

            def each(i):
                before = set(closed)
                _watch_closures(watched, t0, closed)
                for name in set(closed) - before:
                    closed_after_msgs[name] = i + 1

            st = publish_many(r.port, channel, b"x" * MiB, n, on_each=each)
            t_pub = time.monotonic() - t0
            r.fig("publish statuses", counts(st) + " in %.1f s" % t_pub)
            r.probe()
            # Watch a while longer: is the slow subscriber ever let go?
            limit = time.monotonic() + h.after
            while len(closed) < len(watched) and time.monotonic() < limit:
                _watch_closures(watched, t0, closed)
                time.sleep(0.1)
            rss_held = r.rss_now()
            pending = {name: net.unread_bytes(s) for name, s in watched}
            m = net.metrics(r.port)
        finally:
            for _, s in watched:
                s.close()
        r.left()
        peak_minus = None
        r.fig("RSS while the subscribers were held", "%.0f MiB" % rss_held)
        for name, _ in watched:
            if name in closed:
                at = closed_after_msgs.get(name)
                when = "%.1f s after the first publish%s" % (
                    closed[name], " (after message %d)" % at if at else "")
                r.fig("%s closed by the server" % name, when)
                r.note("%s closed by server at %s" % (name, secs(closed[name])))
            else:
                r.fig("%s closed by the server" % name,
                      "never (watched %.0f s after the last publish)" % h.after)
                r.note("%s never closed (watched %.0f s)" % (name, h.after))
            r.fig("%s bytes waiting unread" % name, "{:,}".format(pending[name]))
        if m is not None:
            r.fig("subscribers dropped (metrics)", "%d" % m.get(DROPPED_METRIC, -1))
        samples = r.sampler.window(r.t_before, r.t_end)
        if samples:
            peak_minus = (max(s[1] for s in samples) - r.before[1]) / 1024
            r.note("peak %+.0f MiB" % peak_minus)


# ------------------------------------------------------- 5. slowloris

class Drip:
    __slots__ = ("sock", "name", "t_open", "t_closed", "resp", "kind")

    def __init__(self, sock, name, kind):
        self.sock = sock
        self.name = name
        self.kind = kind
        self.t_open = time.monotonic()
        self.t_closed = None
        self.resp = b""

    def status(self):
        line = self.resp.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = line.split(" ")
        return parts[1] if len(parts) > 1 and line.startswith("HTTP/") else "no status"


def slowloris(h, key, cap=None):
    n = h.p["slowloris_conns"]
    dur = h.p["slowloris_s"]
    args = ["--max-connections", str(cap)] if cap else []
    title = "slowloris: %s heads at 1 byte/s + 1 POST body at 1 byte/5 s, %d s" % (
        "{:,}".format(n), dur)
    if cap:
        title += " (--max-connections %d)" % cap
    with Row(h, key, title, "serve", args=args) as r:
        r.mark_before()
        head = (b"GET /channels/sl/poll HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " +
                b"a" * (dur + 200) + b"\r\n\r\n")
        drips = []
        by_fd = {}
        poller = select.poll()
        failed_connects = collections.Counter()
        t_start = time.monotonic()
        try:
            for i in range(n):
                try:
                    s = net.connect(r.port, src=net.source_address(i), timeout=2)
                except OSError as e:
                    failed_connects[e.__class__.__name__] += 1
                    continue
                s.setblocking(False)
                d = Drip(s, i, "head")
                drips.append(d)
            body = None
            try:
                s = net.connect(r.port, timeout=2)
                s.sendall(b"POST /channels/slowbody HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Length: 1000\r\n\r\n")
                s.setblocking(False)
                body = Drip(s, "body", "body")
                drips.append(body)
            except OSError as e:
                failed_connects["body " + e.__class__.__name__] += 1
            for d in drips:
                by_fd[d.sock.fileno()] = d
                poller.register(d.sock, select.POLLIN | net.POLLRDHUP)
            r.fig("connections opened", "%d in %.1f s%s" % (
                len(drips), time.monotonic() - t_start,
                (", failed: " + counts(failed_connects)) if failed_connects else ""))
            t0 = time.monotonic()
            pos = 0
            next_tick = t0
            next_body = t0 + 5
            probe_at = [(3, "t+3s"), (dur / 2, "t+%.0fs" % (dur / 2))]
            open_count_series = []

            def close_drip(d):
                if d.t_closed is None:
                    d.t_closed = time.monotonic()
                    try:
                        poller.unregister(d.sock)
                    except (KeyError, ValueError):
                        pass

            while time.monotonic() - t0 < dur:
                now = time.monotonic()
                if now >= next_tick:
                    if pos < len(head):
                        byte = head[pos:pos + 1]
                        for d in drips:
                            if d.t_closed is None and d.kind == "head":
                                try:
                                    d.sock.send(byte)
                                except BlockingIOError:
                                    pass
                                except OSError:
                                    close_drip(d)
                        pos += 1
                    open_count_series.append((now - t0, sum(1 for d in drips if d.t_closed is None)))
                    next_tick += 1.0
                if body is not None and body.t_closed is None and now >= next_body:
                    try:
                        body.sock.send(b"z")
                    except BlockingIOError:
                        pass
                    except OSError:
                        close_drip(body)
                    next_body += 5.0
                while probe_at and now - t0 >= probe_at[0][0]:
                    r.probe_async(label=probe_at.pop(0)[1])
                wait = max(0.0, min(next_tick, next_body) - time.monotonic())
                for fd, ev in poller.poll(wait * 1000):
                    d = by_fd.get(fd)
                    if d is None or d.t_closed is not None:
                        continue
                    try:
                        data = d.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        d.resp += data[:256]
                    if not data or ev & (select.POLLHUP | select.POLLERR | net.POLLRDHUP):
                        # Drain what is left, then count it closed.
                        try:
                            while True:
                                more = d.sock.recv(4096)
                                if not more:
                                    break
                                d.resp += more[:256]
                        except OSError:
                            pass
                        close_drip(d)
        finally:
            still_open = sum(1 for d in drips if d.t_closed is None)
            for d in drips:
                d.sock.close()
        r.left()
        heads = [d for d in drips if d.kind == "head"]
        closed = [d for d in heads if d.t_closed is not None]
        times = sorted(d.t_closed - t0 for d in closed)
        st = collections.Counter(d.status() for d in closed)
        if closed:
            r.fig("slow heads closed by the server", "%d of %d, at %.1f / %.1f / %.1f s "
                  "(min / median / max after the first byte), statuses: %s" % (
                      len(closed), len(heads), times[0], statistics.median(times), times[-1],
                      counts(st)))
            r.note("heads closed: %d/%d, median %.1f s, %s" % (
                len(closed), len(heads), statistics.median(times), counts(st)))
        else:
            r.fig("slow heads closed by the server", "none of %d within %d s" % (len(heads), dur))
            r.note("heads closed: 0/%d within %d s" % (len(heads), dur))
        if body is not None:
            if body.t_closed is not None:
                txt = "at %.1f s, status %s" % (body.t_closed - t0, body.status())
            else:
                txt = "not within %d s" % dur
            r.fig("slow body closed by the server", txt)
            r.note("slow body closed: " + txt)
        r.fig("still open when the attacker left", "%d" % still_open)
        r.fig("open slow connections each second",
              " ".join("%d" % c for _, c in open_count_series))


# ------------------------------------------------- 6. channel table lockout

class WsCounter(threading.Thread):
    """Reads a /ws socket's server frames and counts reply types."""

    def __init__(self, sock, buf, limit_s):
        super().__init__(daemon=True)
        self.sock = sock
        self.buf = bytearray(buf)
        self.limit = time.monotonic() + limit_s
        self.counts = collections.Counter()
        self.closed = False
        self.halt = threading.Event()

    def run(self):
        pos = 0
        self.sock.settimeout(0.5)
        while not self.halt.is_set() and time.monotonic() < self.limit:
            # Parse every whole frame in the buffer.
            while True:
                if len(self.buf) - pos < 2:
                    break
                b0, b1 = self.buf[pos], self.buf[pos + 1]
                ln = b1 & 0x7F
                off = 2
                if ln == 126:
                    if len(self.buf) - pos < 4:
                        break
                    ln = int.from_bytes(self.buf[pos + 2:pos + 4], "big")
                    off = 4
                elif ln == 127:
                    if len(self.buf) - pos < 10:
                        break
                    ln = int.from_bytes(self.buf[pos + 2:pos + 10], "big")
                    off = 10
                if len(self.buf) - pos < off + ln:
                    break
                payload = bytes(self.buf[pos + off:pos + off + min(ln, 64)])
                op = b0 & 0x0F
                if op == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                    self.counts["close %d" % code] += 1
                elif payload.startswith(b'{"type":"'):
                    self.counts[payload[9:].split(b'"', 1)[0].decode()] += 1
                else:
                    self.counts["other"] += 1
                pos += off + ln
            if pos > 1 << 16:
                del self.buf[:pos]
                pos = 0
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buf += chunk


def fresh_publish(port):
    name = "fresh-%s" % os.urandom(4).hex()
    return net.status_of(port, "POST", "/channels/%s" % name, body=b"x")


def channel_joins(h):
    n = h.p["channels"]
    with Row(h, "6a", "channel table: one /ws joining %s distinct channels" % "{:,}".format(n),
             "serve") as r:
        r.mark_before()
        s, rest = net.ws_connect(r.port, "/ws", timeout=10)
        counter = WsCounter(s, rest, 300)
        counter.start()
        outcome = "all sent"
        t0 = time.monotonic()
        try:
            s.settimeout(10)
            key = os.urandom(4)
            batch = 1000
            sent = 0
            for start in range(0, n, batch):
                if time.monotonic() - t0 > 180:
                    outcome = "time cap"
                    break
                data = b"".join(net.frame(0x1, ('{"op":"join","channel":"c%d"}' % i).encode(), key=key)
                                for i in range(start, min(n, start + batch)))
                try:
                    s.sendall(data)
                except socket.timeout:
                    outcome = "server stopped reading"
                    break
                except OSError as e:
                    outcome = "closed by server (%s)" % e.__class__.__name__
                    break
                sent = min(n, start + batch)
            # Wait for the replies (bounded).
            limit = time.monotonic() + 20
            while (sum(counter.counts.values()) < sent and not counter.closed
                   and time.monotonic() < limit):
                time.sleep(0.1)
            t_sent = time.monotonic() - t0
            during = fresh_publish(r.port)
            r.probe()
            m = net.metrics(r.port)
        finally:
            counter.halt.set()
            s.close()
            counter.join(timeout=2)
        r.left()
        after = fresh_publish(r.port)
        r.fig("joins sent", "{:,} in {:.1f} s ({})".format(sent, t_sent, outcome))
        r.fig("server replies", counts(counter.counts))
        if m is not None:
            r.fig("channels alive (metrics)", "%d" % m.get("rtwire_channels", -1))
        r.fig("fresh client publishing to a new channel, attacker connected", during)
        r.fig("the same after the attacker left", after)
        r.note("replies: %s" % counts(counter.counts))
        r.note("new channel while attacked: %s, after: %s" % (during, after))


def channel_posts(h):
    n = h.p["channels"]
    nconn = 4
    with Row(h, "6b", "channel table: %s one-byte POSTs to distinct channels (%d keep-alive "
             "connections)" % ("{:,}".format(n), nconn), "serve") as r:
        r.mark_before()
        statuses = collections.Counter()
        lock = threading.Lock()
        closes = collections.Counter()
        t0 = time.monotonic()

        def worker(w):
            local = collections.Counter()
            mine = list(range(w, n, nconn))
            i = 0
            reconnects = 0
            while i < len(mine) and reconnects < 5000 and time.monotonic() - t0 < 180:
                try:
                    s = net.connect(r.port, src=net.source_address(w), timeout=10)
                except OSError:
                    reconnects += 1
                    time.sleep(0.2)
                    continue
                try:
                    rd = net.Reader(s)
                    while i < len(mine) and time.monotonic() - t0 < 180:
                        chunk = mine[i:i + 200]
                        s.sendall(b"".join(net.request_bytes("POST", "/channels/p%d" % k, body=b"x")
                                           for k in chunk))
                        for _ in chunk:
                            st, hd, _ = rd.response(time.monotonic() + 15)
                            local[st] += 1
                            i += 1
                            if hd.get("connection", "").lower() == "close":
                                raise ConnectionError("server said Connection: close")
                except OSError as e:
                    with lock:
                        closes[e.__class__.__name__] += 1
                    reconnects += 1
                finally:
                    s.close()
            with lock:
                statuses.update(local)

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(nconn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        t_sent = time.monotonic() - t0
        during = fresh_publish(r.port)
        r.probe()
        m = net.metrics(r.port)
        r.left()
        after = fresh_publish(r.port)
        r.fig("POST statuses", counts(statuses) + " in %.1f s" % t_sent)
        if closes:
            r.fig("connections ended by the server", counts(closes))
        if m is not None:
            r.fig("channels alive (metrics)", "%d" % m.get("rtwire_channels", -1))
        r.fig("fresh client publishing to a new channel", during)
        r.fig("the same after the attacker left (+%.0f s)" % (r.t_end - r.t_left), after)
        r.note("POSTs: %s" % counts(statuses))
        r.note("new channel then: %s, later: %s" % (during, after))


# ------------------------------------------- 7. long polls after a reset

def long_polls_reset(h):
    n = h.p["long_polls"]
    with Row(h, "7", "%d long polls (timeout=120) closed with a TCP reset" % n, "serve") as r:
        r.mark_before()
        conns = []
        try:
            for i in range(n):
                s = net.connect(r.port, src=net.source_address(i), timeout=5)
                s.sendall(net.request_bytes("GET", "/channels/lp/long-poll?timeout=120"))
                conns.append(s)
            held = None
            limit = time.monotonic() + 10
            while time.monotonic() < limit:
                m = net.metrics(r.port)
                held = m.get(LONG_POLL_METRIC) if m else None
                if held is not None and held >= n:
                    break
                time.sleep(0.2)
            r.fig("long polls held (metrics) before the reset", held)
            r.probe()
        finally:
            for s in conns:
                net.reset_close(s)
        t_reset = time.monotonic()
        series = []
        state = {"last": 0.0, "zero": None}

        def until():
            now = time.monotonic()
            if now - state["last"] >= 0.5:
                state["last"] = now
                m = net.metrics(r.port, timeout=2)
                held = m.get(LONG_POLL_METRIC) if m else None
                series.append((now - t_reset, held, proc_fds(r.pid)))
                if held == 0 and state["zero"] is None:
                    state["zero"] = now - t_reset
            return state["zero"] is not None

        r.left(until=until)
        r.fig("after the reset: (s, long_poll metric, fds)",
              " ".join("%.1f:%s/%s" % (t, "-" if v is None else "%d" % v, f) for t, v, f in series))
        if state["zero"] is not None:
            r.note("long_poll metric 0 after %.1f s" % state["zero"])
        else:
            last = series[-1][1] if series else None
            r.note("long_poll metric still %s after %.0f s" % (
                "-" if last is None else "%d" % last, h.after))


# -------------------------------------------- 8. descriptor exhaustion

class Established:
    """A client connected before an attack, to show the server keeps
    serving it while the attack holds every other slot: on `serve` an SSE
    subscriber plus a /ws socket in the same room that publishes (an idle
    keep-alive connection would rightly give its slot up to a newcomer),
    on `echo` a WebSocket."""

    def __init__(self, port, mode):
        self.port, self.mode = port, mode
        deadline = time.monotonic() + 5
        if mode == "echo":
            self.ws, rest = net.ws_connect(port, path="/", timeout=5)
            self.frames = net.FrameReader(self.ws, rest)
            return
        self.channel = "established-%s" % os.urandom(4).hex()
        self.sse = net.connect(port, timeout=5)
        self.sse.sendall(net.request_bytes("GET", "/channels/%s/events" % self.channel, []))
        self.sse_reader = net.Reader(self.sse)
        status, _ = self.sse_reader.head(deadline)
        if status != 200:
            raise net.ProbeError("SSE answered %d" % status)
        self.ws, rest = net.ws_connect(port, path="/ws", timeout=5)
        self.frames = net.FrameReader(self.ws, rest)
        join = '{"op":"join","channel":"%s"}' % self.channel
        self.ws.sendall(net.frame(0x1, join.encode()))
        self._until(b'"joined"', deadline)

    def _until(self, needle, deadline):
        while True:
            _, op, data = self.frames.next(deadline)
            if op == 0x8:
                raise net.ProbeError("closed by server")
            if needle in data:
                return data

    def round_trip(self, timeout=5.0):
        """(ok, seconds, detail) of one message through the old connections."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        payload = ("established-%s" % os.urandom(6).hex()).encode()
        try:
            if self.mode == "echo":
                self.ws.sendall(net.frame(0x1, payload))
                while True:
                    _, op, data = self.frames.next(deadline)
                    if op == 0x1 and data == payload:
                        return True, time.monotonic() - t0, "ok"
                    if op == 0x8:
                        return False, time.monotonic() - t0, "closed by server"
            command = '{"op":"publish","channel":"%s","data":"%s"}' % (
                self.channel, payload.decode())
            self.ws.sendall(net.frame(0x1, command.encode()))
            self._until(payload, deadline)
            while payload not in self.sse_reader.buf:
                self.sse_reader._fill(deadline)
            return True, time.monotonic() - t0, "ok"
        except socket.timeout:
            return False, time.monotonic() - t0, "no answer in %.0f s" % timeout
        except (OSError, net.ProbeError, ValueError) as e:
            return False, time.monotonic() - t0, "%s: %s" % (e.__class__.__name__, e)

    def close(self):
        for name in ("ws", "sse"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()


def fd_exhaustion(h, mode):
    key = "8a" if mode == "serve" else "8b"
    limit = h.p["fd_limit"]
    n = limit + h.p["fd_extra"]
    path = "/ws" if mode == "serve" else "/"
    with Row(h, key, "descriptor exhaustion: %d WebSocket connections, server limit %d (%s)" %
             (n, limit, mode), mode, nofile=limit) as r:
        r.mark_before()
        conns = []
        established = Established(r.port, mode)
        try:
            for i in range(n):
                try:
                    s = net.connect(r.port, src=net.source_address(i), timeout=2)
                except OSError:
                    continue
                s.sendall(net.ws_upgrade_bytes(path))
                conns.append(s)
            time.sleep(1.0)
            upgraded = 0
            other = collections.Counter()
            for s in conns:
                s.setblocking(False)
                try:
                    data = s.recv(64, socket.MSG_PEEK)
                except BlockingIOError:
                    other["no answer"] += 1
                    continue
                except OSError as e:
                    other[e.__class__.__name__] += 1
                    continue
                if data.startswith(b"HTTP/1.1 101"):
                    upgraded += 1
                elif data:
                    other[data.split(b"\r\n", 1)[0].decode("latin-1")] += 1
                else:
                    other["closed"] += 1
            r.fig("connections", "%d opened, %d upgraded (101), others: %s" % (
                len(conns), upgraded, counts(other) or "-"))
            # The server idles with its descriptors used up.
            idle = h.p["idle_s"]
            cpu0, log0, t0 = proc_cpu_s(r.pid), r.server.stderr_bytes(), time.monotonic()
            core0 = core_times(0)
            time.sleep(idle)
            cpu1, log1, t1 = proc_cpu_s(r.pid), r.server.stderr_bytes(), time.monotonic()
            core1 = core_times(0)
            cpu_pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
            log_rate = (log1 - log0) / (t1 - t0)
            busy = ""
            if core0 and core1 and core1[1] > core0[1]:
                busy = "; core 0 as a whole was %.0f%% busy (other work shares it)" % (
                    100.0 * (core1[0] - core0[0]) / (core1[1] - core0[1]))
            r.fig("server CPU while idle at the limit", "%.0f%% of a core over %.0f s%s" % (
                cpu_pct, idle, busy))
            r.fig("stderr while idle", "{:,.0f} B/s".format(log_rate))
            # A new client.
            t = time.monotonic()
            if mode == "serve":
                st = net.status_of(r.port, "GET", "/healthz", timeout=5)
            else:
                try:
                    s, _ = net.ws_connect(r.port, "/", timeout=5)
                    s.close()
                    st = 101
                except net.ProbeError as e:
                    st = str(e)
                except socket.timeout:
                    st = "no answer in 5 s"
                except OSError as e:
                    st = "error: %s" % e.__class__.__name__
            took = time.monotonic() - t
            r.fig("a new client (%s)" % ("GET /healthz" if mode == "serve" else "WebSocket handshake"),
                  "%s after %.2f s" % (st, took))
            old_ok, old_secs, old_detail = established.round_trip()
            old = "yes (%.0f ms)" % (old_secs * 1000) if old_ok else "no (%s)" % old_detail
            r.fig("a client connected before the attack, round trip at the limit", old)
            r.probe()
        finally:
            established.close()
            for s in conns:
                s.close()
        r.left()
        first = r.server.stderr_head(300).splitlines()
        r.fig("stderr in all", "{:,} B; first lines: {}".format(
            r.server.stderr_bytes(), " | ".join(first[:3])))
        r.note("CPU %.0f%% idle at the limit%s" % (cpu_pct, busy.replace(
            "; core 0 as a whole was", " (core 0").replace(" busy (other work shares it)", " busy)")))
        r.note("new client: %s after %.1f s" % (st, took))
        r.note("client connected before: %s" % old)
        r.note("stderr {:,.0f} B/s".format(log_rate))


# ------------------------------------------------------------ 9. identity

def identity(h):
    args = ["--subscribe-token", "SUB", "--publish-token", "PUB"]
    with Row(h, "9", "identity: ?user=bob with the shared subscribe token; publish token in "
             "the query", "serve", args=args) as r:
        r.mark_before()
        secret = "secret-for-bob-%s" % os.urandom(3).hex()
        pub = net.status_of(r.port, "POST", "/channels/user:bob",
                            headers=[("Authorization", "Bearer PUB")], body=secret.encode())
        r.fig("publish to user:bob (Bearer PUB)", pub)
        try:
            st, _, body = net.http(r.port, "GET", "/channels/user:bob/poll?token=SUB&user=bob")
            leaked = secret.encode() in body
            res = "%d%s" % (st, ", bob's message in the answer" if leaked else "")
        except OSError as e:
            st, res = None, "error: %s" % e
        r.fig("GET /channels/user:bob/poll?token=SUB&user=bob", res)
        q = net.status_of(r.port, "POST", "/channels/x?token=PUB", body=b"q")
        r.fig("POST /channels/x?token=PUB without Authorization", q)
        # The same identity claim over /ws.
        try:
            ws, rest = net.ws_connect(r.port, "/ws?token=SUB&user=bob")
            try:
                fr = net.FrameReader(ws, rest)
                _, _, first = fr.next(time.monotonic() + 2)
                wsres = first[:80].decode("utf-8", "replace")
            except OSError:
                wsres = "upgraded, nothing sent in 2 s"
            finally:
                ws.close()
        except net.ProbeError as e:
            wsres = str(e)
        except OSError as e:
            wsres = "error: %s" % e
        r.fig("/ws?token=SUB&user=bob, first server message", wsres)
        r.probe(sub_token="SUB", pub_token="PUB")
        r.left()
        r.note("user:bob poll with ?user=bob: %s (401/403 wanted)" % res)
        r.note("?token=PUB publish: %s (401 wanted)" % q)


# ------------------------------------------- 10. one byte per segment

def big_head(size, path="/healthz"):
    start = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path).encode()
    lines = []
    total = len(start) + 2
    i = 0
    while total < size and i < 60:
        room = size - total - len("X-Pad-00: \r\n")
        if room <= 0:
            break
        line = ("X-Pad-%02d: %s\r\n" % (i, "a" * min(120, room))).encode()
        lines.append(line)
        total += len(line)
        i += 1
    return start + b"".join(lines) + b"\r\n"


def _cpu_pair(pid):
    return proc_cpu_s(pid), proc_runtime_s(pid)


def byte_segments(h):
    size = h.p["head_bytes"]
    gap_us = h.p["byte_gap_us"]
    with Row(h, "10", "a %d-byte head one byte per TCP segment (no gap, and %d µs gaps) vs one "
             "write" % (size, gap_us), "serve") as r:
        r.mark_before()
        head = big_head(size)
        small = big_head(1024)
        s = net.connect(r.port, timeout=10)
        runs = collections.defaultdict(list)  # phase -> [(cpu_s, sched_s, wall_s) per request]
        statuses = collections.Counter()
        error = None
        try:
            rd = net.Reader(s)

            def measure(phase, data, count, bytewise, gap=0.0, probe=False):
                c0, t0 = _cpu_pair(r.pid)
                w0 = time.monotonic()
                for k in range(count):
                    if probe and k == count // 2:
                        r.probe_async()
                    if bytewise:
                        for i in range(len(data)):
                            s.send(data[i:i + 1])
                            if gap:
                                time.sleep(gap)
                    else:
                        s.sendall(data)
                    statuses[rd.response(time.monotonic() + 30)[0]] += 1
                c1, t1 = _cpu_pair(r.pid)
                runs[phase].append(((c1 - c0) / count, (t1 - t0) / count,
                                    (time.monotonic() - w0) / count))

            # Alternating rounds, medians: the machine is shared and noisy.
            rounds = max(1, h.p["cpu_rounds"])
            for k in range(rounds):
                measure("one", head, max(1, h.p["onewrite_requests"] // rounds), False)
                measure("byte", head, max(1, h.p["bytewise_requests"] // rounds), True,
                        probe=(k == rounds // 2))
                measure("byte1k", small, max(1, 4 * h.p["bytewise_requests"] // rounds), True)
            measure("gap", head, max(1, h.p["gap_requests"]), True, gap=gap_us / 1e6)
        except OSError as e:
            error = "%s: %s (after %s)" % (e.__class__.__name__, e, ", ".join(runs) or "nothing")
        finally:
            s.close()
        r.left()
        r.fig("statuses", counts(statuses))
        if error:
            r.fig("stopped by an error", error)
            r.note("error " + error)

        def med(phase, i):
            return statistics.median(x[i] for x in runs[phase]) if runs.get(phase) else None

        def us(x):
            return "-" if x is None else "%.0f µs" % (x * 1e6)

        names = {"one": "one write", "byte": "one byte per segment, no gap",
                 "byte1k": "one byte per segment, no gap, %d-byte head" % len(small),
                 "gap": "one byte per segment, %d µs gaps" % gap_us}
        for phase, name in names.items():
            if runs.get(phase):
                r.fig("%s: CPU per request (utime+stime / schedstat), wall" % name, "%s / %s, %s" % (
                    us(med(phase, 0)), us(med(phase, 1)), us(med(phase, 2))))

        def ratio(phase, i):
            a, b = med(phase, i), med("one", i)
            return a / b if a is not None and b else None

        for phase in ("byte", "gap"):
            rs, rt = ratio(phase, 0), ratio(phase, 1)
            if rs is not None or rt is not None:
                r.fig("ratio, %s / one write" % names[phase], "%s (utime+stime), %s (schedstat)" % (
                    "-" if rs is None else "%.0fx" % rs, "-" if rt is None else "%.0fx" % rt))
        if med("byte", 1) and med("byte1k", 1):
            exponent = math.log(med("byte", 1) / med("byte1k", 1)) / math.log(len(head) / len(small))
            r.fig("cost growth with head size, no gap", "~n^%.1f (1 = linear, 2 = quadratic)" %
                  exponent)
        parts = []
        if med("one", 0) is not None:
            parts.append("CPU/request one write %s" % us(med("one", 0)))
        for phase, label in (("byte", "no gap"), ("gap", "%d µs gaps" % gap_us)):
            rs, rt = ratio(phase, 0), ratio(phase, 1)
            if rs is not None:
                parts.append("bytewise %s %s = %.0fx (schedstat %s)" % (
                    label, us(med(phase, 0)), rs, "-" if rt is None else "%.0fx" % rt))
        if parts:
            r.note("; ".join(parts))


# ------------------------------------------------------ 11. echo memory

def echo_memory(h):
    nconn, size_mib = h.p["echo_conns"], h.p["echo_mib"]
    frag_mib = h.p["echo_fragment_mib"]
    with Row(h, "11", "echo: %d connections each send a %d MiB message (fragments of %d MiB), "
             "never read" % (nconn, size_mib, frag_mib), "echo") as r:
        r.mark_before()
        frag = frag_mib * MiB
        total = size_mib * MiB
        nfrag = max(1, -(-total // frag))
        chunk = b"\xab" * frag
        tail = b"\xab" * (total - frag * (nfrag - 1))
        outcomes = collections.Counter()
        lock = threading.Lock()
        conns = []
        t0 = time.monotonic()

        def send_message(s):
            key = os.urandom(4)
            # The same masked frame bytes are reused: each frame restarts the mask.
            first = net.frame(0x2, chunk if nfrag > 1 else tail, fin=(nfrag == 1), key=key)
            mid = net.frame(0x0, chunk, fin=False, key=key)
            last = net.frame(0x0, tail, fin=True, key=key)
            s.settimeout(10)
            sent = 0
            try:
                for k in range(nfrag):
                    s.sendall(first if k == 0 else (last if k == nfrag - 1 else mid))
                    sent += frag if k < nfrag - 1 else len(tail)
                what = "sent whole"
            except socket.timeout:
                what = "server stopped reading at ~%d MiB" % (sent // MiB)
            except OSError as e:
                what = "closed by server at ~%d MiB (%s)" % (sent // MiB, e.__class__.__name__)
            with lock:
                outcomes[what] += 1

        try:
            for i in range(nconn):
                try:
                    s, _ = net.ws_connect(r.port, "/", src=net.source_address(i), timeout=5)
                    conns.append(s)
                except (OSError, net.ProbeError) as e:
                    outcomes["connect: %s" % e] += 1
            # All connections send at once, one thread each.
            senders = [threading.Thread(target=send_message, args=(s,), daemon=True) for s in conns]
            for t in senders:
                t.start()
            for t in senders:
                t.join(timeout=max(1.0, 120 - (time.monotonic() - t0)))
            t_sent = time.monotonic() - t0
            r.probe()
            hold = time.monotonic() + h.p["hold_s"]
            while time.monotonic() < hold:
                time.sleep(0.1)
            closed = sum(1 for s in conns if net.peer_closed(s))
            pending = sum(max(0, net.unread_bytes(s)) for s in conns)
        finally:
            for s in conns:
                s.close()
        r.left()
        shape = ("fragmented: %d frames of up to %d MiB" % (nfrag, frag_mib) if nfrag > 1
                 else "one frame")
        r.fig("messages", "%s in %.1f s (binary, %s, masked, all connections at once)" % (
            counts(outcomes), t_sent, shape))
        r.fig("connections closed by the server while held", "%d of %d" % (closed, len(conns)))
        r.fig("echo bytes waiting unread in the clients", "{:,}".format(pending))
        r.note(shape)
        r.note(counts(outcomes))
        samples = r.sampler.window(r.t_before, r.t_end)
        if samples:
            r.note("peak %+.0f MiB" % ((max(x[1] for x in samples) - r.before[1]) / 1024))
        # Connection cap, after the measurement above.
        usage = ""
        try:
            usage = subprocess.run([h.binary, "--help"], capture_output=True, text=True,
                                   timeout=5).stdout + ""
        except (OSError, subprocess.TimeoutExpired):
            pass
        echo_lines = [l.strip() for l in usage.splitlines() if "echo" in l and "[" in l]
        r.fig("usage of echo", echo_lines[0] if echo_lines else "-")
        k = h.p["echo_cap_conns"]
        ok = 0
        other = collections.Counter()
        cap_conns = []
        t0 = time.monotonic()
        try:
            for i in range(k):
                if time.monotonic() - t0 > 60:
                    other["time cap"] += 1
                    break
                try:
                    s, _ = net.ws_connect(r.port, "/", src=net.source_address(i), timeout=3)
                    cap_conns.append(s)
                    ok += 1
                except net.ProbeError as e:
                    other[str(e)] += 1
                except OSError as e:
                    other[e.__class__.__name__] += 1
        finally:
            for s in cap_conns:
                s.close()
        capped = "--max-connections" in " ".join(echo_lines)
        r.fig("connection cap", "%d of %d WebSockets opened at once%s; usage %s a cap flag" % (
            ok, k, (", others: " + counts(other)) if other else "", "lists" if capped else "lists no"))
        r.note("cap: %d/%d opened%s" % (ok, k, (" (" + counts(other) + ")") if other else ""))


# -------------------------------------------------------- 12. HTTP details

def http_details(h):
    limit = 16 * MiB
    args = ["--publish-token", "PUB", "--max-body", str(limit + 4 * MiB)]
    with Row(h, "12", "HTTP details", "serve", args=args) as r:
        r.mark_before()
        yes = {True: "yes", False: "no"}
        lines = []

        # HEAD on the SSE route.
        s = net.connect(r.port)
        try:
            s.sendall(net.request_bytes("HEAD", "/channels/h/events"))
            data = b""
            end = time.monotonic() + 2
            eof = False
            while time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                except OSError:
                    eof = True
                    break
                if not chunk:
                    eof = True
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
        finally:
            s.close()
        lines.append(("HEAD /channels/h/events streams a body", "%s (%s, %d body bytes in 2 s)" % (
            yes[len(body) > 0], status, len(body))))
        lines.append(("HEAD /channels/h/events stays open", yes[not eof]))

        # HEAD vs GET Content-Length.
        for path in ("/", "/healthz"):
            try:
                _, hh, _ = net.http(r.port, "HEAD", path)
                _, gh, gb = net.http(r.port, "GET", path)
                same = hh.get("content-length") == gh.get("content-length")
                lines.append(("HEAD %s Content-Length equals GET's" % path, "%s (HEAD %s, GET %s)" % (
                    yes[same], hh.get("content-length"), gh.get("content-length"))))
            except OSError as e:
                lines.append(("HEAD %s Content-Length equals GET's" % path, "error: %s" % e))

        # Expect: 100-continue.
        s = net.connect(r.port)
        try:
            s.sendall(b"POST /channels/e HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer PUB\r\n"
                      b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            s.settimeout(1.5)
            try:
                early = s.recv(4096)
            except socket.timeout:
                early = b""
            got100 = early.startswith(b"HTTP/1.1 100")
            final = None
            if not early or got100:
                s.sendall(b"hello")
                rd = net.Reader(s, early)
                try:
                    final = rd.response(time.monotonic() + 3)[0]
                except OSError:
                    final = "none"
            else:
                final = early.split(b"\r\n", 1)[0].decode("latin-1")
        finally:
            s.close()
        lines.append(("Expect: 100-continue answered 100 before the body", "%s (final %s)" % (
            yes[got100], final)))

        # A body over the hub's 16 MiB message limit (under --max-body).
        s = net.connect(r.port, timeout=10)
        try:
            rd = net.Reader(s)
            req = net.request_bytes("POST", "/channels/big", [("Authorization", "Bearer PUB")],
                                    b"b" * (limit + 1))

            def send_body():
                # In the background: the server may answer (and stop
                # reading) before the body is all sent.
                try:
                    s.sendall(req)
                except OSError:
                    pass

            sender = threading.Thread(target=send_body, daemon=True)
            sender.start()
            try:
                big = rd.response(time.monotonic() + 15)[0]
            except OSError as e:
                big = "no status (%s)" % e.__class__.__name__
        finally:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sender.join(timeout=5)
            s.close()
        lines.append(("body of 16 MiB + 1 (over the hub's message limit): status", "%s (413 wanted)" % big))

        # HTTP/1.1 without Host.
        nohost = net.status_of(r.port, "GET", "/healthz",
                               raw=net.request_bytes("GET", "/healthz", host=None))
        lines.append(("HTTP/1.1 request without Host: status", "%s (400 wanted)" % nohost))

        # Lower-case auth scheme.
        lower = net.status_of(r.port, "POST", "/channels/lc", headers=[("Authorization", "bearer PUB")],
                              body=b"x")
        lines.append(("Authorization: bearer (lower case) accepted", "%s (%s)" % (
            yes[lower == 202], lower)))
        r.probe(pub_token="PUB")
        r.left()
        for k, v in lines:
            r.fig(k, v)
        r.note("HEAD on SSE streams: %s, stays open: %s" % (lines[0][1].split(" ")[0], lines[1][1]))
        r.note("HEAD CL = GET CL: " + ", ".join(v.split(" (")[0] + " " + k.split(" ")[1]
                                                 for k, v in lines[2:4]))
        r.note("100-continue: %s" % lines[4][1].split(" ")[0])
        r.note("16 MiB+1 body: %s" % big)
        r.note("no Host: %s" % nohost)
        r.note("lower-case bearer: %s" % lines[7][1])


# ---------------------------------------------------------------- registry

ATTACKS = [
    ("1a", lambda h: unread_pongs(h, "serve")),
    ("1b", lambda h: unread_pongs(h, "echo")),
    ("2", poll_amplification),
    ("3", history_pins),
    ("4a", lambda h: slow_subscribers(h, "4a")),
    ("4b", lambda h: slow_subscribers(h, "4b")),
    ("5a", lambda h: slowloris(h, "5a")),
    ("5b", lambda h: slowloris(h, "5b", cap=h.p["slowloris_cap"])),
    ("6a", channel_joins),
    ("6b", channel_posts),
    ("7", long_polls_reset),
    ("8a", lambda h: fd_exhaustion(h, "serve")),
    ("8b", lambda h: fd_exhaustion(h, "echo")),
    ("9", identity),
    ("10", byte_segments),
    ("11", echo_memory),
    ("12", http_details),
]

DEFAULTS = {
    "pings": 1_000_000, "ping_cap_s": 90,
    "poll_msgs": 16, "poll_msg_bytes": MiB, "poll_conns": 4, "hold_s": 5,
    "pin_rounds": 200,
    "slow_msgs": 150, "slow2_msgs": 50,
    "slowloris_conns": 1000, "slowloris_s": 30, "slowloris_cap": 500,
    "channels": 100_000,
    "long_polls": 500,
    "fd_limit": 256, "fd_extra": 100, "idle_s": 5,
    "head_bytes": 8000, "bytewise_requests": 12, "onewrite_requests": 3000, "cpu_rounds": 3,
    "byte_gap_us": 50, "gap_requests": 4,
    "echo_conns": 8, "echo_mib": 45, "echo_fragment_mib": 15, "echo_cap_conns": 1200,
}

QUICK = {
    "pings": 200_000, "ping_cap_s": 30,
    "poll_msgs": 16, "hold_s": 3,
    "pin_rounds": 60,
    "slow_msgs": 50, "slow2_msgs": 20,
    "slowloris_conns": 300, "slowloris_s": 15, "slowloris_cap": 150,
    "long_polls": 200,
    "idle_s": 3,
    "bytewise_requests": 4, "onewrite_requests": 1000, "cpu_rounds": 2, "gap_requests": 2,
    "echo_conns": 4, "echo_mib": 20, "echo_cap_conns": 400,
}
