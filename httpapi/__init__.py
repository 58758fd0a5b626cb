"""The HTTP framework: typed routes, JSON errors, request keys, observability."""
