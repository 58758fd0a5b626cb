"""What arrives on the socket before any handler sees it.

- Frames nested deeper than `WIRE_DEPTH` are refused before they are decoded: the JSON
  decoder recurses, and a 2 KB frame of brackets would exhaust its stack.
- A frame that does not decode, or is not a packet a client may send, is dropped with one
  warning line, never a traceback: it may come from anyone, logged in or not.
- Event names the server keeps for itself (`connect`, `disconnect`, `*`), and events that
  are not a list starting with a name, never reach a handler: the ack is
  `socket.unknown_event`.
- A long-polling client sends every packet it has queued in one POST. engine.io refuses a
  POST of more than 16 packets whole, answering 200 while every ack is lost; here the limit
  is the server's `packets_per_post`, so a burst the rate limit allows arrives whole. A POST
  beyond it ends the session (the client sees the drop and reconnects), without a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import socketio
from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import payload as eio_payload
from socketio import packet

from core.inputs import MAX_DEPTH

log = logging.getLogger("cloudwindow.signaling")

# A socket.io event wraps its payload in a list ([name, payload]): payloads nested a little
# deeper than MAX_DEPTH still decode and are answered `too_deep`; far deeper is not read.
WIRE_DEPTH = 2 * MAX_DEPTH
RESERVED_EVENTS = frozenset({"connect", "disconnect", "*"})
# Packet types a client may send (CONNECT_ERROR goes only from server to client).
CLIENT_PACKETS = frozenset(
    {
        packet.CONNECT,
        packet.DISCONNECT,
        packet.EVENT,
        packet.ACK,
        packet.BINARY_EVENT,
        packet.BINARY_ACK,
    }
)
# Brackets and quotes, with any escaped character taken as one token (so \" is not a quote).
_TOKENS = re.compile(r'[\[\]{}"]|\\.', re.DOTALL)


class Malformed(ValueError):
    """A frame that is not a packet we read."""


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays and objects deeper than `limit` (strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to be that deep
    depth = 0
    in_string = False
    for m in _TOKENS.finditer(text):
        token = m.group()
        if token[0] == "\\":
            continue
        if token == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class WireJson:
    """The json module engine.io and socket.io decode frames with, with a depth limit."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kw: Any) -> Any:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        if nesting_exceeds(raw, WIRE_DEPTH):
            raise Malformed(f"nested deeper than {WIRE_DEPTH}")
        return json.loads(text, **kw)


class WirePacket(packet.Packet):
    """A socket.io packet whose decoding fails only with Malformed."""

    json = WireJson

    def decode(self, encoded_packet: Any) -> Any:
        try:
            count = super().decode(encoded_packet)
        except (ValueError, TypeError, IndexError, RecursionError) as e:
            raise Malformed(type(e).__name__) from None
        if self.packet_type not in CLIENT_PACKETS:
            raise Malformed(f"packet type {self.packet_type}")
        return count


class PollingSocket(async_socket.AsyncSocket):
    """An engine.io session whose polling POSTs may carry `packets_per_post` packets."""

    packets_per_post: int = eio_payload.Payload.max_decode_packets

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        # python-engineio 4.15's own handler, with the packet limit of this session.
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise eio_exceptions.ContentTooLongError()
        body = (await environ["wsgi.input"].read(length)).decode("utf-8")
        payload = eio_payload.Payload()
        payload.max_decode_packets = self.packets_per_post
        try:
            payload.decode(body)
        except ValueError:
            log.warning(
                "closed a polling session: more than %d packets in one POST", self.packets_per_post
            )
            raise eio_exceptions.EngineIOError("too many packets") from None
        for pkt in payload.packets:
            await self.receive(pkt)


class WireServer(socketio.AsyncServer):
    """python-socketio's server with the frame rules above (its private hooks, pinned 5.18).

    `packets_per_post`: how many packets one long-polling POST may carry (engine.io's
    default, 16, unless given).
    """

    def __init__(
        self,
        *,
        refuse: Callable[[Any], Any],
        packets_per_post: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(serializer=WirePacket, json=WireJson, **kw)
        self.refuse = refuse  # the ack for an event no handler may see
        self.accepting = True  # False while draining: new engine.io sessions get HTTP 401
        self.packets_per_post = packets_per_post or PollingSocket.packets_per_post

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        if not self.accepting:
            return False
        # engine.io builds its session object itself, just before this hook and before the
        # client can POST anything: give it the polling rule above.
        eio_socket = self.eio.sockets.get(eio_sid)
        if type(eio_socket) is async_socket.AsyncSocket:
            eio_socket.__class__ = PollingSocket
            eio_socket.packets_per_post = self.packets_per_post
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # Binary packets and their attachments run no handler of ours while they are put
        # together: whatever fails there is the frame's fault.
        binary = eio_sid in self._binary_packet or (isinstance(data, str) and data[:1] in "56")
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Malformed as e:
            log.warning("dropped a socket frame that is not a packet we read: %s", e)
        except (ValueError, IndexError, KeyError, TypeError) as e:
            if not binary:
                raise
            self._binary_packet.pop(eio_sid, None)
            log.warning("dropped a binary socket frame: %s", type(e).__name__)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        name = data[0] if isinstance(data, list) and data else None
        if isinstance(name, str) and name not in RESERVED_EVENTS:
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        ns = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, ns)
        if id is None or sid is None or not self.manager.is_connected(sid, ns):
            return
        ack = self.packet_class(packet.ACK, namespace=namespace, id=id, data=[self.refuse(name)])
        await self._send_packet(eio_sid, ack)
