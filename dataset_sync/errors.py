"""The one exception family: every failure a user can fix is a DatasetSyncError."""

from __future__ import annotations


class DatasetSyncError(Exception):
    """A failure the user can fix; the commands turn it into CommandError."""


class InvalidSpecError(DatasetSyncError):
    """A spec names an unknown model or key, or has a value of the wrong shape."""


class UnknownDatasetError(DatasetSyncError):
    """The dataset name is not registered; the message lists the ones that are."""


class DatasetArgumentsError(DatasetSyncError):
    """The dataset function rejected the arguments after the colon."""


class DumpWriteError(DatasetSyncError):
    """The dump cannot be written where it was asked to go (no such directory, no permission)."""


class DumpFormatError(DatasetSyncError):
    """The dump is malformed, truncated, of an unknown version, or fails its digest."""


class SchemaMismatchError(DatasetSyncError):
    """The dump names a model or field the target database does not have."""


class LoadIntegrityError(DatasetSyncError):
    """Writing the dump would break a constraint: a missing foreign key row, a duplicate."""


class DeletionProtectedError(DatasetSyncError):
    """A row the dataset would delete is protected by a PROTECT or RESTRICT relation."""


class LockTimeoutError(DatasetSyncError):
    """Another load into the same database held the load lock longer than the lock timeout."""
