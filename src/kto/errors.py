"""User-facing errors: one line, naming the file, the row and what is wrong."""


class KTOError(Exception):
    """An error the CLI prints as one line (no traceback) before exiting non-zero."""


class DataError(KTOError):
    """Bad input data. The message starts with `FILE:LINE:` or `FILE: row N:`."""
