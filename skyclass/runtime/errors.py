"""Exceptions that carry meaning. chalice_app/errors.py maps them to HTTP status codes,
in one place; anything else becomes a generic 500 without a traceback."""

from __future__ import annotations


class SkyclassError(Exception):
    """Base of every error skyclass raises on purpose."""

    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(SkyclassError):
    """A ``SKYCLASS_*`` setting cannot be used: the operator's to fix, so the API answers
    500 and logs the message, which names the variable."""

    code = "ConfigurationError"


class BadRequestError(SkyclassError):
    code = "BadRequest"


class InvalidImageError(SkyclassError):
    """The bytes are not an image we can classify (corrupt, truncated, unknown format)."""

    code = "InvalidImage"


class UnsupportedMediaTypeError(SkyclassError):
    code = "UnsupportedMediaType"


class PayloadTooLargeError(SkyclassError):
    code = "PayloadTooLarge"


class ForbiddenError(SkyclassError):
    """The request lacks the API key this stage requires, or has a wrong one."""

    code = "Forbidden"


class ConflictError(SkyclassError):
    """The request does not fit the job's state (e.g. cancelling a finished job, or
    asking for the export of a running one)."""

    code = "Conflict"


class JobNotFoundError(SkyclassError):
    code = "JobNotFound"


class ImageNotFoundError(SkyclassError):
    code = "ImageNotFound"


class InvalidMessageError(SkyclassError):
    """An SQS body that is not a valid work message."""

    code = "InvalidMessage"


class ModelUnavailableError(SkyclassError):
    """The model (or its weights, or its labels) cannot be loaded."""

    code = "ModelUnavailable"


class AwsError(SkyclassError):
    """A botocore error, wrapped; the original stays in __cause__."""

    code = "AwsError"
