"""One reading of AWS errors for every call model_store makes, and one family of
storage errors: what each kind of failure is called and how it reads."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from model_store import DataBucketError, RegistryError, StorageError
from model_store.aws_errors import (
    describe_error,
    error_code,
    is_not_found,
    is_precondition_failed,
)


def _client_error(code: str, message: str = "", operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_a_service_answer_reads_as_its_code_and_message() -> None:
    exc = _client_error("AccessDenied", "Access Denied")
    assert error_code(exc) == "AccessDenied"
    assert describe_error(exc) == "AccessDenied: Access Denied"


def test_an_answer_without_a_message_falls_back_to_botocore_s_text() -> None:
    exc = _client_error("404", operation="HeadObject")
    assert describe_error(exc).startswith(
        "404: An error occurred (404) when calling the HeadObject"
    )


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://s3.example"),
        ReadTimeoutError(endpoint_url="https://s3.example"),
        OSError("connection reset"),
    ],
    ids=["no connection", "read timeout", "plain OSError"],
)
def test_a_failure_no_service_answered_reads_as_its_type(exc: Exception) -> None:
    assert error_code(exc) == type(exc).__name__
    assert describe_error(exc) == f"{type(exc).__name__}: {exc}"
    assert not is_not_found(exc)


@pytest.mark.parametrize(
    ("code", "found", "found_with_markers"),
    [("NoSuchKey", False, False), ("404", False, False), ("405", True, False)],
)
def test_what_counts_as_a_missing_key(code: str, found: bool, found_with_markers: bool) -> None:
    exc = _client_error(code)
    assert is_not_found(exc) is not found
    assert is_not_found(exc, delete_marker=True) is not found_with_markers


def test_a_conditional_write_that_lost() -> None:
    assert is_precondition_failed(_client_error("PreconditionFailed"))
    assert is_precondition_failed(_client_error("412"))
    assert not is_precondition_failed(_client_error("AccessDenied"))


def test_registry_and_data_bucket_failures_are_storage_errors() -> None:
    assert issubclass(RegistryError, StorageError)
    assert issubclass(DataBucketError, StorageError)
    assert not issubclass(DataBucketError, RegistryError)
