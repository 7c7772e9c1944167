"""Server side of RFC 6455 WebSockets plus a minimal HTTP/1.1 request reader (stdlib only).

The fake Paseo daemon serves HTTP, WebSocket and its own JSON-lines protocol on one address.
It runs under the system python3, which has no third-party packages, so the few parts of the
WebSocket protocol it needs are written here: the upgrade handshake (Sec-WebSocket-Accept,
subprotocol echo), reading masked client frames (text, binary, fragmented messages, ping,
close) and writing unmasked server frames. Not supported: extensions (permessage-deflate is
never negotiated), HTTP keep-alive (one request per connection), TLS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # the daemon's `ws` library default maxPayload
MAX_HEADER_LINES = 100
CLOSE_GRACE_S = 2.0

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/(1\.[01])\r?\n$")


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass
class HttpRequest:
    """One parsed HTTP/1.1 request head (header names lower-cased, last value wins)."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """A header value, or None when absent."""
        return self.headers.get(name.lower())

    def tokens(self, name: str) -> list[str]:
        """A comma-separated header as trimmed, lower-cased tokens (Connection, Upgrade)."""
        return [t.strip().lower() for t in (self.header(name) or "").split(",") if t.strip()]


def is_http_request_line(line: bytes) -> bool:
    """Does the first line of a connection look like `GET /path HTTP/1.1`?"""
    return _REQUEST_LINE.match(line) is not None


async def read_http_request(first_line: bytes, reader: asyncio.StreamReader) -> HttpRequest:
    """Read the header block after an already-read request line; ValueError when malformed."""
    match = _REQUEST_LINE.match(first_line)
    if match is None:
        raise ValueError("not an HTTP request line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1")
        if not line.endswith("\n"):
            raise ValueError("connection closed inside the HTTP head")
        line = line.rstrip("\r\n")
        if not line:
            return HttpRequest(match.group(1).decode(), match.group(2).decode(), headers)
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many header lines")


def http_response(
    status: int,
    body: bytes | str,
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A complete `Connection: close` response (the fake never keeps HTTP connections alive)."""
    data = body.encode() if isinstance(body, str) else body
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(data)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


# ---------------------------------------------------------------------------------------------
# Handshake


def upgrade_problem(request: HttpRequest) -> str | None:
    """Why a request is not a valid WebSocket upgrade (the ws library answers 400), or None."""
    if request.method != "GET":
        return "Invalid HTTP method"
    if "websocket" not in request.tokens("upgrade"):
        return "Invalid Upgrade header"
    if "upgrade" not in request.tokens("connection"):
        return "Invalid Connection header"
    key = request.header("sec-websocket-key") or ""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Invalid Sec-WebSocket-Key header"
    except (binascii.Error, ValueError):
        return "Invalid Sec-WebSocket-Key header"
    if request.header("sec-websocket-version") not in ("8", "13"):
        return "Missing or invalid Sec-WebSocket-Version header"
    return None


def is_upgrade(request: HttpRequest) -> bool:
    """The client asked for a WebSocket (valid or not)."""
    return "websocket" in request.tokens("upgrade")


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def offered_subprotocols(request: HttpRequest) -> list[str]:
    """Sec-WebSocket-Protocol split on commas, as the ws library does."""
    raw = request.header("sec-websocket-protocol") or ""
    return [p.strip() for p in raw.split(",") if p.strip()]


def handshake_response(request: HttpRequest, subprotocol: str | None) -> bytes:
    """The 101 answer; `subprotocol` must be one the client offered (or None)."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(request.header('sec-websocket-key') or '')}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---------------------------------------------------------------------------------------------
# Frames


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked server frame."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask; done on one big int so a 100 MiB frame stays fast."""
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def close_payload(code: int, reason: str) -> bytes:
    """Close frame body: 2-byte code + UTF-8 reason (truncated to fit 125 bytes)."""
    return struct.pack("!H", code) + reason.encode()[:123]


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a received close frame."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")


class WebSocket:
    """One accepted server-side WebSocket over an asyncio stream pair.

    `recv()` returns whole messages (str for text, bytes for binary) and None once the
    connection is over; pings are answered and close frames echoed inside it. Sends never
    block: frames are written to the transport buffer and dropped once the socket is closing.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.close_sent = False
        self.close_code: int | None = None  # what the peer sent, once it did

    @property
    def open(self) -> bool:
        """Can messages still be sent?"""
        return not self.close_sent and not self.writer.is_closing()

    def send_text(self, text: str) -> None:
        """Send one text message (a single frame)."""
        self._write(OP_TEXT, text.encode())

    def _write(self, opcode: int, payload: bytes) -> None:
        if not self.close_sent and not self.writer.is_closing():
            self.writer.write(encode_frame(opcode, payload))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the transport is dropped after the peer's answer."""
        if self.close_sent:
            return
        self._write(OP_CLOSE, close_payload(code, reason))
        self.close_sent = True
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection now."""
        if not self.writer.is_closing():
            self.writer.close()

    async def drain_until_closed(self) -> None:
        """After `close()`: read (and discard) until the peer's close frame or EOF."""
        while await self.recv() is not None:
            pass

    async def recv(self) -> str | bytes | None:
        """The next complete message, or None when the connection is closed."""
        try:
            return await self._recv_message()
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        self.abort()
        return None

    async def _recv_message(self) -> str | bytes | None:
        fragments: list[bytes] = []
        first_opcode: int | None = None
        size = 0
        while True:
            fin, opcode, payload = await self._read_frame()
            if opcode >= OP_CLOSE:
                if not self._control(opcode, payload):
                    return None
                continue
            if opcode == OP_CONTINUATION and first_opcode is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame")
            if opcode != OP_CONTINUATION and first_opcode is not None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "Expected a continuation frame")
            if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"Invalid opcode {opcode}")
            first_opcode = opcode if first_opcode is None else first_opcode
            size += len(payload)
            if size > MAX_MESSAGE_BYTES:
                raise ProtocolError(CLOSE_TOO_BIG, "Max payload size exceeded")
            fragments.append(payload)
            if fin:
                return self._assemble(first_opcode, b"".join(fragments))

    @staticmethod
    def _assemble(opcode: int, data: bytes) -> str | bytes:
        if opcode == OP_BINARY:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8 sequence") from exc

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Handle a control frame; False when it was a close frame (connection over)."""
        if opcode == OP_PING:
            self._write(OP_PONG, payload)
            return True
        if opcode == OP_PONG:
            return True
        if opcode != OP_CLOSE:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"Invalid opcode {opcode}")
        code, _reason = parse_close(payload)
        self.close_code = code
        if not self.close_sent:
            self._write(OP_CLOSE, payload[:2])
            self.close_sent = True
        self.abort()
        return False

    async def _read_frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, unmasked payload) of one client frame."""
        b0, b1 = await self.reader.readexactly(2)
        if b0 & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV bits set without an extension")
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if not b1 & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "Client frames must be masked")
        length = b1 & 0x7F
        if opcode >= OP_CLOSE and (length > 125 or not fin):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "Invalid control frame")
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        if length > MAX_MESSAGE_BYTES:
            raise ProtocolError(CLOSE_TOO_BIG, "Max payload size exceeded")
        mask = await self.reader.readexactly(4)
        return fin, opcode, unmask(await self.reader.readexactly(length), mask)
