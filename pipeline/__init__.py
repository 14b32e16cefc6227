"""The face of sept-pipeline: CLI, config loading, protocols and reports.

Imports run pipeline -> stages -> cache, never back up.
"""
