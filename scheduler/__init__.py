"""Scheduler: appointment slots, home-visit planning, courier deliveries and sweeps."""
