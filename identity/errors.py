"""Domain errors raised by every service layer; the API and dashboard map them to responses.

They live at the bottom of the dependency graph (identity) so that every app can raise them.
"""


class ZenithError(Exception):
    """A refusal a user can act on: carries an HTTP status and a stable error code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidInput(ZenithError):
    status = 400
    code = "invalid"


class NotAuthenticated(ZenithError):
    status = 401
    code = "not_authenticated"


class PolicyDenied(ZenithError):
    status = 403
    code = "forbidden"


class NotFound(ZenithError):
    status = 404
    code = "not_found"


class Conflict(ZenithError):
    status = 409
    code = "conflict"


class QuotaExceeded(ZenithError):
    status = 413
    code = "quota_exceeded"


class ServiceUnavailable(ZenithError):
    status = 503
    code = "unavailable"


class TooLarge(ZenithError):
    status = 413
    code = "too_large"
