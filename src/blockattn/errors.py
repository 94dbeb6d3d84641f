"""The one error type that means "the user gave us something we cannot use".

The CLI turns it into a one-line message on stderr and exit code 2 (the server into an HTTP 4xx);
anything else escaping is a bug in blockattn and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a missing file, an empty question, a context longer than the model allows, ..."""

    exit_code = 2
