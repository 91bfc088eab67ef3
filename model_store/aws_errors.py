"""Reading errors from AWS clients: one vocabulary for every call model_store makes.

botocore's ClientError carries the service's answer in ``response["Error"]``; its other
errors (no connection, read timeout, no credentials) carry only a message. Everything
here reads both without importing botocore, so the light paths stay light.
"""

from __future__ import annotations

# What S3 answers for a key that is not there: GetObject names it, HEAD only has a status.
NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})


def error_code(exc: BaseException) -> str:
    """The service's error code ("NoSuchKey", "AccessDenied", "404"), or the exception's
    type name when no service answered."""
    error = _error(exc)
    if error is not None:
        return str(error.get("Code") or "Unknown")
    return type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """ "Code: message" for people: the service's own words when it answered."""
    error = _error(exc)
    if error is not None:
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "") or str(exc)
        return f"{code}: {message}"
    return f"{type(exc).__name__}: {exc}"


def is_not_found(exc: BaseException, *, delete_marker: bool = False) -> bool:
    """Whether EXC says the key does not exist (DELETE_MARKER: a versioned HEAD's 405
    counts too)."""
    code = error_code(exc)
    return code in NOT_FOUND or (delete_marker and code == "405")


def is_precondition_failed(exc: BaseException) -> bool:
    return error_code(exc) in PRECONDITION_FAILED


def _error(exc: BaseException) -> dict[str, object] | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict):
            return error
    return None
