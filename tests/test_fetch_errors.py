"""How upstream failures map to codes and statuses, using botocore's own exception types."""

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from cache_extension.fetchers import FetchError


def client_error(code: str, message: str = "The secret value hunter2 is wrong") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetParameters")


@pytest.mark.parametrize(
    "exc, code, status",
    [
        (client_error("ParameterNotFound"), "ParameterNotFound", 404),
        (client_error("ResourceNotFoundException"), "ResourceNotFoundException", 404),
        (client_error("AccessDeniedException"), "AccessDeniedException", 502),
        (client_error("ThrottlingException"), "ThrottlingException", 502),
        (ReadTimeoutError(endpoint_url="https://ssm.us-west-2.amazonaws.com"), "Timeout", 504),
        (ConnectTimeoutError(endpoint_url="https://ssm.us-west-2.amazonaws.com"), "Timeout", 504),
        (EndpointConnectionError(endpoint_url="https://ssm.us-west-2.amazonaws.com"), "ConnectionError", 502),
        (NoCredentialsError(), "NoCredentials", 502),
        (ValueError("hunter2"), "ValueError", 502),
    ],
)
def test_failures_map_to_a_code_and_status(exc, code, status):
    error = FetchError.from_exception(exc, "ssm:GetParameters")
    assert (error.code, error.status) == (code, status)
    # AWS's message can quote request data: only the code travels on.
    assert "hunter2" not in str(error) and "hunter2" not in error.message
