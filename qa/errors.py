"""One small error hierarchy. Library code raises these; only the CLI and the UI render them.

Every message says what went wrong and, where there is one, the fix.
"""


class QAError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(QAError):
    """A question or an argument the user gave is not acceptable."""


class SettingsError(InputError):
    """A setting has a bad value."""


class CorpusError(QAError):
    """Documents could not be read, or there is nothing to index."""


class IndexNotFoundError(QAError):
    """No index has been built where one was expected."""


class IndexCorruptError(QAError):
    """An index exists but its files can't be read or disagree with each other."""


class IndexMismatchError(QAError):
    """The index was built with other settings (embedder, chunking) than those asked for."""


class ModelError(QAError):
    """A model is missing, corrupt, or can't be loaded."""
