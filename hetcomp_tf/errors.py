"""The one exception type users see: the CLI prints its message as one line and exits 2."""


class HetCompError(Exception):
    """Bad input or configuration, described in one line naming what is wrong and where."""
