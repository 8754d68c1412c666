"""Errors a user can cause. Each says what was wrong and what to do; the CLI prints them
without a traceback and exits non-zero."""
from __future__ import annotations


class EdgesegError(Exception):
    """Base class of every error edgeseg raises for a mistake the user can fix."""


class InputFileError(EdgesegError, FileNotFoundError):
    """A path is missing, unreadable, or is not the kind of file it claims to be."""


class ArrayError(EdgesegError, ValueError):
    """An array has the wrong dtype, shape, or memory layout."""


class ModelError(EdgesegError):
    """A model name, checkpoint, or exported model is unknown, corrupt, or incomplete."""


class DataError(EdgesegError):
    """A dataset folder does not have the expected layout or content."""


class OutputError(EdgesegError, OSError):
    """An output cannot be written completely (disk full, folder removed or made read-only); the
    partial file is removed, never left looking complete."""


class SourceError(EdgesegError):
    """A video source (camera, stream, file) cannot be opened or read."""


class ExportError(EdgesegError):
    """Export failed, or the exported model disagrees with PyTorch beyond the allowed tolerance."""


class BackendError(EdgesegError):
    """An inference backend is unavailable or cannot run the given model."""
