"""The workbench's own exceptions: each message says what went wrong and what to do."""


class WorkbenchError(Exception):
    """Base class; the CLI prints these as one line, without a traceback."""


class DataError(WorkbenchError, ValueError):
    """The input table cannot be used as given."""


class ModelError(WorkbenchError, ValueError):
    """A model name, task or configuration is not valid."""


class UnknownNameError(WorkbenchError, KeyError):
    """A name looked up in a registry does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
