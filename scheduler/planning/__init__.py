"""Home-visit planning: the problem format, travel times, the solver and its worker."""
