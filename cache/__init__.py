"""The memory: neighbor store, frozen-feature cache, fingerprints, locking, atomic writes.

cache/ knows arrays, tables and files, not models: nothing here imports torch or stages/.
"""
