"""Errors that reach the user as one line naming the problem and what to do."""


class UserError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    Messages name the problem and, where there is one, the fix.
    """


class ToolError(UserError):
    """An external command (podman, miniwdl, ...) failed."""
