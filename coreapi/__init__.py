"""The HTTP surface of core's shared domain, one module per subdomain."""

from __future__ import annotations

from coreapi import auth, cases, catalog, residents, sites, staff
from httpapi.api import Api


def register(api: Api) -> None:
    """Declare the shared domain's routes."""
    for module in (auth, catalog, sites, residents, cases, staff):
        module.register(api)
