"""The toolkit every lab imports: hardware, budget profiles, data, models,
checkpoints and the self-check machinery.

Importing the package is cheap; torch and friends load only in the modules
that need them.
"""

__version__ = "0.1.0"


class SetupError(RuntimeError):
    """Something the labs need is missing or wrong; the message is one line
    that names the thing and the command that fixes it."""
