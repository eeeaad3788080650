"""Errors that reach the user as one line naming the problem and what to do."""


class UserError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    Messages name the problem and, where there is one, the fix.
    """


class ToolError(UserError):
    """An external command (podman, miniwdl, ...) failed."""


class Interrupted(UserError):
    """The user stopped the command (Ctrl-C or SIGTERM) and it cleaned up after itself.

    The CLI exits with ``status``: 128 + the signal number, as a shell reports a command killed by it.
    """

    def __init__(self, message: str, status: int = 130) -> None:
        super().__init__(message)
        self.status = status
