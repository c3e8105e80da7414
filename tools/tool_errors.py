"""User errors -> one `error: ...` line and exit status 2, for every tool's main().

The library raises ValueError (bad data, configs, arguments, conversions;
ConfigError, ManifestError, ShardError, ConversionError and the like are subclasses)
and OSError (FileNotFoundError for a path that does not exist, FileExistsError for
one that must not) for things a user can fix. A tool shows those as one line naming
the file, flag or key, and exits with status 2; anything else is a bug and keeps its
traceback (status 1). The traceback of a user error is still logged at debug level
(`--verbosity=1`) for whoever needs it.

    from absl import app
    import tool_errors

    @tool_errors.exit_on_user_error
    def main(argv): ...

    @tool_errors.exit_on_user_error(also=(RuntimeError,))  # more expected errors
    def main(argv): ...

    app.run(main)
"""

import functools
import re
import sys

import tensorflow as tf
from absl import logging

# TensorFlow's file ops raise these for an unwritable path and a full disk (and the
# second for memory too: also something the user fixes, not a bug).
USER_ERRORS = (ValueError, OSError, tf.errors.PermissionDeniedError,
               tf.errors.ResourceExhaustedError)
EXIT_USER_ERROR = 2


def error_line(error):
    """`error: <message>` on one line, even if the message spans several (e.g. a TF
    error's context)."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    # TF prefixes the op's name ("{{function_node ...}}"): noise to a user.
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    message = " ".join(text.split("\n")).strip() or type(error).__name__
    return f"error: {message}"


def exit_on_user_error(main=None, *, also=()):
    """Wraps an absl `main(argv)`: a `USER_ERRORS` exception (or one of `also`) prints
    `error_line` on stderr and makes the process exit with status 2."""
    if main is None:
        return functools.partial(exit_on_user_error, also=tuple(also))
    expected = USER_ERRORS + tuple(also)

    @functools.wraps(main)
    def wrapper(argv):
        try:
            return main(argv)
        except expected as e:
            logging.debug("user error", exc_info=True)
            print(error_line(e), file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper
