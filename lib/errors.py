"""The one base class of the errors a user can fix: a config key, an arch, a checkpoint, a data folder.

Every such error derives from ``CreamError`` and its message names the problem and the fix. The entry
scripts print it as one ``error:`` line and exit with status 2 (``lib.engine.guard``); any other
exception is a bug or a crash and keeps its traceback.
"""


class CreamError(Exception):
    """A problem with what the user gave; the message says what to change."""


class ConfigError(CreamError, ValueError):
    """A config file, override or combination of values that cannot be used."""


class DataError(CreamError, FileNotFoundError):
    """The dataset folder is missing or unusable; the message names the path and the fix."""


class InputFileError(CreamError, ValueError):
    """A file a tool reads (given, or in a results folder) that is missing, damaged or of the wrong kind; the
    message names the file and what is wrong (``lib.checked_io.read_json``, ``file_error``)."""


class OutputError(CreamError):
    """An output place that cannot be written (``lib.checked_io.check_output_file``); found before any work."""
