"""The one exception type that means "the user gave bad input" (exit code 2).

It lives in cache/, the bottom layer, so every layer can raise it without importing upwards.
"""


class UserError(Exception):
    """Bad input: a one-line message naming the file, key or value and what would be accepted."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep it to one line: the CLI prints it as-is.
        super().__init__(" ".join(str(message).split()))
