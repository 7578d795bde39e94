"""Errors that the command line reports as one line and exit code 2."""


class UserError(Exception):
    """A mistake in what the user asked for (bad path, bad config, corrupt file)."""


class ConfigError(UserError):
    """A configuration file or `--set` override that cannot be used."""


class ProfileError(UserError):
    """A hardware profile with a missing or invalid field."""


class NetworkFileError(UserError):
    """A network file (netx HDF5) that is missing, corrupt or not randhet's."""


class DataError(UserError):
    """A data set file whose contents are corrupt or not in the expected format."""
