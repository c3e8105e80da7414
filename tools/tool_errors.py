"""User errors -> one `error: ...` line and exit status 1, for every tool's main().

The library raises ValueError (bad data, configs, arguments; ManifestError,
ShardError and the like are subclasses) and OSError (missing or existing paths) for
things a user can fix. A tool shows those as one line, not a traceback; anything
else is a bug and keeps its traceback. The traceback of a user error is still
logged at debug level (`--verbosity=1`) for whoever needs it.

    from absl import app
    import tool_errors

    @tool_errors.exit_on_user_error
    def main(argv): ...

    app.run(main)
"""

import functools
import sys

from absl import logging

USER_ERRORS = (ValueError, OSError)


def exit_on_user_error(main):
    """Wraps an absl `main(argv)`: a `USER_ERRORS` exception prints `error: <message>`
    on stderr and makes the process exit with status 1."""

    @functools.wraps(main)
    def wrapper(argv):
        try:
            return main(argv)
        except USER_ERRORS as e:
            logging.debug("user error", exc_info=True)
            # One line even if a message spans several (e.g. a TF error's context).
            message = " ".join(str(e).split("\n")).strip() or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            return 1

    return wrapper
