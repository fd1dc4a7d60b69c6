"""Loopback clients for the hostile harness: raw HTTP/1.1, a hand-written
WebSocket client (masked frames), and the fresh-client probes.

Everything here talks to 127.0.0.0/8 only: `connect` refuses any other
address. Every blocking call has a timeout.
"""

import base64
import os
import select
import socket
import struct
import time

LOOPBACK_PREFIX = "127."
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect()
POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


class ProbeError(Exception):
    pass


def source_address(index):
    """127.0.0.2 .. 127.0.0.254, round robin, for connection floods."""
    return "127.0.0.%d" % (2 + index % 253)


def connect(port, host="127.0.0.1", src=None, timeout=5.0, nodelay=True, rcvbuf=None):
    """A TCP connection to a loopback address, optionally from `src`."""
    if not host.startswith(LOOPBACK_PREFIX) or (src and not src.startswith(LOOPBACK_PREFIX)):
        raise ValueError("the harness only talks to 127.0.0.0/8")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if src:
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            except OSError:
                pass
            s.bind((src, 0))
        s.settimeout(timeout)
        s.connect((host, port))
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    except BaseException:
        s.close()
        raise


def reset_close(s):
    """Close with a TCP reset (SO_LINGER on, 0 s)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def peer_closed(s):
    """True if the peer sent FIN/RST (checked without reading our data)."""
    p = select.poll()
    p.register(s, POLLRDHUP | select.POLLHUP | select.POLLERR)
    for _, ev in p.poll(0):
        if ev & (POLLRDHUP | select.POLLHUP | select.POLLERR):
            return True
    return False


def unread_bytes(s):
    """Bytes waiting in our receive queue (SIOCINQ)."""
    import fcntl
    import termios
    try:
        buf = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    except OSError:
        return -1


# ---------------------------------------------------------------- HTTP

def request_bytes(method, path, headers=(), body=b"", host="127.0.0.1", length=True):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if host is not None:
        lines.append("Host: %s" % host)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if length and (body or method in ("POST", "PUT")):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Reader:
    """Buffered reads of HTTP responses from one socket, with a deadline.
    `buf[pos:]` is what has been read and not consumed yet."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = bytearray(buf)
        self.pos = 0

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed by server")
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk

    def pending(self):
        return bytes(self.buf[self.pos:])

    def head(self, deadline):
        while True:
            idx = self.buf.find(b"\r\n\r\n", self.pos)
            if idx >= 0:
                break
            if len(self.buf) - self.pos > 65536:
                raise ConnectionError("response head too long")
            self._fill(deadline)
        raw = bytes(self.buf[self.pos:idx])
        self.pos = idx + 4
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def exactly(self, n, deadline):
        while len(self.buf) - self.pos < n:
            self._fill(deadline)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def discard(self, n, deadline):
        """Consumes n bytes without keeping them; returns how many came."""
        have = min(n, len(self.buf) - self.pos)
        self.pos += have
        got = have
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(min(1 << 20, n - got))
            if not chunk:
                break
            got += len(chunk)
        return got

    def response(self, deadline, head_only=False, keep_body=True):
        """(status, headers, body). Interim 1xx answers are skipped. With
        keep_body False the body is read and counted: body is its length."""
        while True:
            status, headers = self.head(deadline)
            if not (100 <= status < 200):
                break
        if head_only:
            return status, headers, b""
        n = int(headers.get("content-length", "0") or 0)
        if not keep_body:
            return status, headers, self.discard(n, deadline)
        body = self.exactly(n, deadline)
        return status, headers, body


def http(port, method, path, headers=(), body=b"", timeout=5.0, src=None, raw=None):
    """One request on a fresh connection: (status, headers, body)."""
    s = connect(port, src=src, timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        s.sendall(raw if raw is not None else request_bytes(method, path, headers, body))
        return Reader(s).response(deadline, head_only=(method == "HEAD"))
    finally:
        s.close()


def status_of(port, method, path, headers=(), body=b"", timeout=5.0, raw=None):
    """The status, or a short text saying why there is none."""
    t0 = time.monotonic()
    try:
        st, _, _ = http(port, method, path, headers, body, timeout, raw=raw)
        return st
    except socket.timeout:
        return "no answer in %.0f s" % (time.monotonic() - t0)
    except OSError as e:
        return "error: %s" % (e.__class__.__name__,)


def metrics(port, timeout=3.0):
    """GET /metrics as {name{labels}: value}, or None."""
    try:
        st, _, body = http(port, "GET", "/metrics", timeout=timeout)
    except OSError:
        return None
    if st != 200:
        return None
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


# ----------------------------------------------------------- WebSocket

def mask_bytes(data, key):
    """XOR with the 4-byte key, fast for large payloads."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload, fin=True, key=None):
    """One client frame (always masked)."""
    if key is None:
        key = os.urandom(4)
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + key + mask_bytes(payload, key)


def ws_upgrade_bytes(path="/ws", extra=()):
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
    headers.extend(extra)
    return request_bytes("GET", path, headers)


def ws_connect(port, path="/ws", src=None, timeout=5.0, extra=(), rcvbuf=None):
    """A WebSocket after its 101; returns (socket, bytes read past the head)."""
    s = connect(port, src=src, timeout=timeout, rcvbuf=rcvbuf)
    try:
        deadline = time.monotonic() + timeout
        s.sendall(ws_upgrade_bytes(path, extra))
        r = Reader(s)
        status, _ = r.head(deadline)
        if status != 101:
            raise ProbeError("upgrade answered %d" % status)
        return s, r.pending()
    except BaseException:
        s.close()
        raise


class FrameReader:
    """Parses unmasked server frames from a socket."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk

    def next(self, deadline):
        """(fin, opcode, payload) of the next frame."""
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload


# ---------------------------------------------------------------- probes

def probe_serve(port, name, sub_token=None, pub_token=None, timeout=5.0):
    """A fresh client's round trip: SSE on a new channel, publish, see it
    arrive. Returns (ok, seconds, detail)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    channel = "probe-%s" % name
    payload = "probe-%s" % os.urandom(6).hex()
    query = "?token=%s" % sub_token if sub_token else ""
    sub_headers = [("Authorization", "Bearer %s" % sub_token)] if sub_token else []
    pub_headers = [("Authorization", "Bearer %s" % pub_token)] if pub_token else []
    sse = None
    try:
        sse = connect(port, timeout=timeout)
        sse.sendall(request_bytes("GET", "/channels/%s/events%s" % (channel, query), sub_headers))
        r = Reader(sse)
        status, _ = r.head(deadline)
        if status != 200:
            return False, time.monotonic() - t0, "SSE answered %d" % status
        pub = connect(port, timeout=max(0.1, deadline - time.monotonic()))
        try:
            pub.sendall(request_bytes("POST", "/channels/%s" % channel, pub_headers, payload.encode()))
            st, _, _ = Reader(pub).response(deadline)
        finally:
            pub.close()
        if st != 202:
            return False, time.monotonic() - t0, "publish answered %d" % st
        while payload.encode() not in r.buf:
            r._fill(deadline)  # the SSE stream, until our event shows
        return True, time.monotonic() - t0, "ok"
    except socket.timeout:
        return False, time.monotonic() - t0, "no answer in %.0f s" % timeout
    except (OSError, ProbeError, ValueError) as e:
        return False, time.monotonic() - t0, "%s: %s" % (e.__class__.__name__, e)
    finally:
        if sse is not None:
            sse.close()


def probe_echo(port, timeout=5.0):
    """A fresh WebSocket echo round trip on `rtwire echo`."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    payload = ("probe-%s" % os.urandom(6).hex()).encode()
    s = None
    try:
        s, rest = ws_connect(port, path="/", timeout=timeout)
        s.sendall(frame(0x1, payload))
        fr = FrameReader(s, rest)
        while True:
            _, op, data = fr.next(deadline)
            if op == 0x1 and data == payload:
                return True, time.monotonic() - t0, "ok"
            if op == 0x8:
                return False, time.monotonic() - t0, "closed by server"
    except socket.timeout:
        return False, time.monotonic() - t0, "no answer in %.0f s" % timeout
    except (OSError, ProbeError, ValueError) as e:
        return False, time.monotonic() - t0, "%s: %s" % (e.__class__.__name__, e)
    finally:
        if s is not None:
            s.close()
