"""Signaling: presence, tickets and the queue, calls, SDP/ICE relay (see docs/protocol.md)."""
