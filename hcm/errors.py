"""User-facing errors.

Every error a person can fix (a missing folder, a bad config value, a truncated
image) is raised as an :class:`HCMError` whose message names the file and the fix.
The CLI prints such errors in one line, without a traceback.
"""

from __future__ import annotations


class HCMError(Exception):
    """An error caused by input the user controls; its message says what to do."""


class ConfigError(HCMError):
    """A configuration file or override is invalid."""


class DatasetError(HCMError):
    """A dataset folder, list file or image is missing or malformed."""


class CheckpointError(HCMError):
    """A checkpoint or weights file is missing, unreadable or incompatible."""


class TrainingError(HCMError):
    """Training cannot continue (e.g. a non-finite loss)."""
