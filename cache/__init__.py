"""The memory: neighbor store, frozen-feature cache, fingerprints, locking, atomic writes.

cache/ knows arrays, tables and files, not models: nothing here imports torch or stages/.
"""

# Marks this package as sept-pipeline's `cache` layer: pipeline/__init__.py checks it (see docs/design.md,
# "Import names").
SEPT_LAYER = "cache"
