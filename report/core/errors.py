"""Errors a user can fix. The CLI prints their message as one line and exits with ``EXIT_USAGE``."""

EXIT_FAILED = 1  # an experiment raised an unexpected error
EXIT_USAGE = 2  # bad input: config, data, store, template; the message says how to fix it
EXIT_INTERRUPTED = 130


class ReportError(Exception):
    """A problem the user can fix; ``str(err)`` is a complete one-line message."""


class ConfigError(ReportError):
    """An unknown profile, experiment, or ``--set`` key or value; ``keys`` names the settings a rule
    between settings concerns (``q4.val_size``), so the CLI can say where each was given."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


class DataError(ReportError):
    """A dataset that is missing and cannot be downloaded, or is unreadable."""


class StoreError(ReportError):
    """A results file that is corrupt, locked or unwritable."""


class MissingResultError(ReportError):
    """A template or claim asked for a result the store does not hold."""


class TemplateError(ReportError):
    """A template that does not parse or uses an undefined value; the message carries file:line."""


class EvidenceError(ReportError):
    """The stored evidence contradicts a conclusion the report would state."""
