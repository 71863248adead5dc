"""The one exception type for mistakes a user can make; the CLI prints it as a single line."""


class MnistlabError(Exception):
    """A user-facing error: a missing or corrupt file, an unknown name, a bad option."""
