"""The one exception type for user mistakes.

Commands raise `BytelmError` for bad input (a missing path, a corrupt shard, a config that does
not fit); the `bytelm` command prints its message as one line on stderr and exits non-zero, so
a user never sees a traceback for their own mistake. Bugs still raise ordinary exceptions.
"""


class BytelmError(Exception):
    """A user-facing error: its message is the whole explanation, on one line."""


class ConfigError(BytelmError, ValueError):
    """A config value that does not fit; the message names the field."""
