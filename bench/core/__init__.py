"""The base layer: what every other part may import, and which imports nothing above it.

errors (what a user can cause), registry (name -> object), config (typed coercion of overrides),
paths (data root, results folder), environment (host, devices, versions, memory) and metrics
(pure functions on arrays).
"""
