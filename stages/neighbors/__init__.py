"""Stage one: semantic neighbors of class names, written by a local LLM, cleaned, encoded and stored."""
