"""User-facing errors.

Anything a user can cause (a wrong path, a corrupt file, a mismatched config, a bad label) raises
``DitkitError`` with one readable sentence. The CLI prints it as a single line and exits non-zero;
library users can catch it. Programming errors stay ordinary exceptions.
"""


class DitkitError(Exception):
    """A problem with the user's input, explained in one readable message."""
