"""The one exception family: every failure a user can fix is a DatasetSyncError.

``exit_code`` is what the commands exit with, so that a cron wrapper can tell a bad dump
from a refusal; the README lists the codes.
"""

from __future__ import annotations

#: Exit codes of the commands (the README documents them).
EXIT_NOTHING_TO_DO = 3
EXIT_BAD_INPUT = 4
EXIT_REFUSED = 5
EXIT_LOCK_TIMEOUT = 6


class DatasetSyncError(Exception):
    """A failure the user can fix; the commands turn it into CommandError."""

    exit_code = EXIT_BAD_INPUT

    def in_file(self, name: str) -> DatasetSyncError:
        """This error with the dump it concerns (its file name) in front of the message.

        Context is added once, where a dump is handled as a whole, rather than passed down
        into every function only to prefix messages. Raise it ``from`` this error.
        """
        return type(self)(f"{name}: {self}")


class InvalidSpecError(DatasetSyncError):
    """A spec names an unknown model or key, or has a value of the wrong shape."""


class UnknownDatasetError(DatasetSyncError):
    """The dataset name is not registered; the message lists the ones that are."""


class DatasetArgumentsError(DatasetSyncError):
    """The dataset function rejected the arguments after the colon."""


class DumpWriteError(DatasetSyncError):
    """The dump cannot be written where it was asked to go (no such directory, no permission)."""


class SpoolError(DatasetSyncError):
    """The loader cannot keep a dump's objects on disk while it loads (a full disk, the file
    size limit)."""


class DumpFormatError(DatasetSyncError):
    """The dump is malformed, truncated, of an unknown version, or fails its digest."""


class InvalidVersionError(DumpFormatError):
    """The dump is of a format version this dataset_sync does not read."""


class SchemaMismatchError(DatasetSyncError):
    """The dump names a model or field the target database does not have."""


class SchemaDriftError(SchemaMismatchError):
    """The schema the dump was written with does not fit this database's: it is behind, or
    the two disagree. Found before anything is written."""


class IdentityMismatchError(SchemaMismatchError):
    """The dump recognises rows of a model otherwise than this database declares."""


class LoadIntegrityError(DatasetSyncError):
    """Writing the dump would break a constraint: a missing foreign key row, a duplicate."""


class CommitRefusedError(LoadIntegrityError):
    """The database refused to commit the load, for a constraint it checks only then."""


class InconsistentModelError(LoadIntegrityError):
    """A dumped multi-table inheritance child exists on the target as another child."""


class DeletionProtectedError(DatasetSyncError):
    """A row the dataset would delete is protected by a PROTECT or RESTRICT relation."""


class RefusedError(DatasetSyncError):
    """The dump is well formed, but this database's own rules refuse to load it."""

    exit_code = EXIT_REFUSED


class UntrustedDumpError(RefusedError):
    """The dump's specs are not what this database declares, or its signature is missing or
    wrong."""


class UnscrubbedDumpError(UntrustedDumpError):
    """The dump was not written with the data rules this database requires for its dataset."""


class StaleDumpError(RefusedError):
    """The dump was made longer ago than this database accepts (``--max-age``,
    DATASET_SYNC_MAX_AGE), or does not say when it was made."""


class DeletionGuardError(RefusedError):
    """The load would delete more rows than allowed, or cascade to rows outside the dataset."""


class LockTimeoutError(DatasetSyncError):
    """Another load into the same database held the load lock longer than the lock timeout."""

    exit_code = EXIT_LOCK_TIMEOUT


class OutsideDatasetError(RefusedError):
    """The dump would write a row that the dataset, as this database declares and selects
    it, does not hold."""
