"""Errors the command line turns into one clear line and a non-zero exit."""


class SnapcollectError(Exception):
    """A failure the user can act on; its message is printed as one line."""

    exit_code = 2


class BundleError(SnapcollectError):
    """The file given is not a readable snapcollect bundle."""
