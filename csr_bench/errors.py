"""The one exception type that reaches the user as a single line (see cli.main)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a bad request: printed as one line, exit code 2, no traceback.

    The message names the file, the line or key, and what was expected.
    """

    exit_code = 2
