"""A raw-socket HTTP client for hostile uploads: stream a body until the server answers, or stall.

httpx and friends send the whole body before they look for an answer; to see *when* a server
answers and how much of the body it let through, the body goes out piece by piece from a
non-blocking socket, and every piece waits on ``select`` for either the answer or room to send.
Loopback only (``HOST``); every loop has a deadline.
"""
from __future__ import annotations

import select
import socket
import time

HOST = "127.0.0.1"
BOUNDARY = "gridplanbenchboundary"


def multipart_head(role: str, filename: str, content_type: str = "text/csv") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{role}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()


def _upload_request(port: int, key: str | None, body_bytes: int, chunked: bool, piece: int):
    """(request head, iterator of body pieces as sent on the wire, body bytes) of a multipart POST /v1/jobs."""
    head = multipart_head("boundaries", "boundaries.geojson", "application/geo+json")
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    filler = (b'{"type":"FeatureCollection","features":[' + b" " * (piece - 40))[:piece]
    n_fill = max(0, body_bytes - len(head) - len(tail))
    hdr = ["POST /v1/jobs HTTP/1.1", f"Host: {HOST}:{port}",
           f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    hdr.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(head) + n_fill + len(tail)}")
    if key:
        hdr.append(f"X-API-Key: {key}")
    request_head = ("\r\n".join(hdr) + "\r\n\r\n").encode()

    def frame(b: bytes) -> bytes:
        return f"{len(b):x}\r\n".encode() + b + b"\r\n" if chunked else b

    def gen():
        yield frame(head)
        left = n_fill
        while left > 0:
            n = min(piece, left)
            yield frame(filler[:n])
            left -= n
        yield frame(tail)
        if chunked:
            yield b"0\r\n\r\n"

    return request_head, gen(), len(head) + n_fill + len(tail)


def streamed_upload(port: int, key: str | None, body_bytes: int, chunked: bool, deadline_s: float = 120.0,
                    piece: int = 64 * 1024) -> dict:
    """POST /v1/jobs from a raw socket, streaming ``body_bytes`` of multipart body until the server answers.

    Returns status, seconds from the first byte sent to the first byte of the answer (or to the server
    refusing more bytes), body bytes sent by then (framing included when chunked), and how the
    connection ended."""
    request_head, pieces, total = _upload_request(port, key, body_bytes, chunked, piece)
    s = socket.create_connection((HOST, port), timeout=10)
    s.setblocking(False)
    sent_body, answer_at, reply, ended = 0, None, b"", None
    t0 = time.perf_counter()
    try:
        _send_all(s, request_head, t0 + deadline_s)
        it = pieces
        buf, sending = memoryview(b""), True
        while time.perf_counter() - t0 < deadline_s:
            if sending and not len(buf):
                nxt = next(it, None)
                if nxt is None:
                    sending = False
                else:
                    buf = memoryview(nxt)
            r, w, _ = select.select([s], [s] if sending else [], [], 0.5)
            if r:                                   # the answer (or the end of the connection)
                if answer_at is None:
                    answer_at = time.perf_counter()
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    ended = "reset by the server"
                    break
                if not chunk:
                    ended = "closed by the server"
                    break
                reply += chunk
                if _complete(reply):
                    break
                continue
            if w and sending:
                try:
                    n = s.send(buf)
                except (BrokenPipeError, ConnectionResetError):
                    sending, ended = False, "the server stopped reading (send failed)"
                    if answer_at is None:
                        answer_at = time.perf_counter()
                    continue
                sent_body += n
                buf = buf[n:]
    finally:
        s.close()
    status = None
    if reply.startswith(b"HTTP/"):
        try:
            status = int(reply.split(b" ", 2)[1])
        except (IndexError, ValueError):
            pass
    body = reply.split(b"\r\n\r\n", 1)[1][:300].decode("utf-8", "replace") if b"\r\n\r\n" in reply else ""
    return {"status": status, "answer_s": None if answer_at is None else round(answer_at - t0, 3),
            "body_bytes_sent_before_answer": sent_body, "body_bytes": total,
            "connection_end": ended, "answer_excerpt": body[:200]}


def _complete(reply: bytes) -> bool:
    """Whether ``reply`` holds a whole HTTP response (headers and Content-Length bytes of body)."""
    if b"\r\n\r\n" not in reply:
        return False
    head, body = reply.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            try:
                return len(body) >= int(v.strip())
            except ValueError:
                return True
    return len(body) > 0


def _send_all(s: socket.socket, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while len(view) and time.perf_counter() < deadline:
        _, w, _ = select.select([], [s], [], 1.0)
        if w:
            view = view[s.send(view):]


def stalled_upload(port: int, key: str | None, wait_s: float) -> dict:
    """Headers promising 10 MB, 1 KB of body, then silence: does the server answer (408) or hang up, and when?"""
    head = multipart_head("boundaries", "boundaries.geojson", "application/geo+json")
    req = (f"POST /v1/jobs HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: multipart/form-data; "
           f"boundary={BOUNDARY}\r\nContent-Length: {10_000_000}\r\n"
           + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n").encode() + head + b" " * 1024
    s = socket.create_connection((HOST, port), timeout=10)
    t0 = time.perf_counter()
    try:
        s.sendall(req)
        s.settimeout(wait_s)
        try:
            data = s.recv(4096)
        except TimeoutError:
            return {"outcome": f"still open after {wait_s:g} s", "seconds": round(time.perf_counter() - t0, 2),
                    "status": None}
        except ConnectionResetError:
            data = b""
    finally:
        s.close()
    secs = round(time.perf_counter() - t0, 2)
    if not data:
        return {"outcome": "closed without an answer", "seconds": secs, "status": None}
    try:
        status = int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return {"outcome": "answered", "seconds": secs, "status": status}
