"""Supervision: the live board, wait alerts, tidal windows and statistics."""
