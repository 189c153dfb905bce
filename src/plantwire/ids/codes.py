"""Handle protocol response codes (RFC 3652 §2.2.2.3; HANDLE.NET ``AbstractMessage``) and the
HTTP status the Handle.net REST API answers each with. No I/O."""

from __future__ import annotations

import enum

__all__ = ["HandleError", "ResponseCode", "http_status"]


class ResponseCode(enum.IntEnum):
    SUCCESS = 1
    ERROR = 2
    SERVER_TOO_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_NOT_SUPPORTED = 5
    RECURSION_COUNT_TOO_HIGH = 6
    SERVER_BACKUP = 7
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXISTS = 101
    INVALID_HANDLE = 102
    VALUES_NOT_FOUND = 200
    VALUE_ALREADY_EXISTS = 201
    INVALID_VALUE = 202
    OUT_OF_DATE_SITE_INFO = 300
    SERVER_NOT_RESPONSIBLE = 301
    SERVICE_REFERRAL = 302
    PREFIX_REFERRAL = 303
    INVALID_ADMIN = 400
    INSUFFICIENT_PERMISSIONS = 401
    AUTHENTICATION_NEEDED = 402
    AUTHENTICATION_FAILED = 403
    INVALID_CREDENTIAL = 404
    AUTHENTICATION_TIMEOUT = 405
    AUTHENTICATION_ERROR = 406
    SESSION_TIMEOUT = 500
    SESSION_FAILED = 501


_STATUS = {
    ResponseCode.HANDLE_NOT_FOUND: 404,
    ResponseCode.HANDLE_ALREADY_EXISTS: 409,
    ResponseCode.VALUE_ALREADY_EXISTS: 409,
    ResponseCode.PROTOCOL_ERROR: 400,
    ResponseCode.INVALID_HANDLE: 400,
    ResponseCode.INVALID_VALUE: 400,
    ResponseCode.SERVER_NOT_RESPONSIBLE: 400,
    ResponseCode.SERVICE_REFERRAL: 300,
    ResponseCode.PREFIX_REFERRAL: 300,
    ResponseCode.OPERATION_NOT_SUPPORTED: 501,
    ResponseCode.SERVER_TOO_BUSY: 503,
    ResponseCode.SERVER_BACKUP: 503,
    ResponseCode.AUTHENTICATION_NEEDED: 401,
    ResponseCode.INVALID_ADMIN: 403,
    ResponseCode.INSUFFICIENT_PERMISSIONS: 403,
    ResponseCode.AUTHENTICATION_FAILED: 403,
    ResponseCode.INVALID_CREDENTIAL: 403,
}


def http_status(code: ResponseCode, *, resolution: bool = False, created: bool = False) -> int:
    """The HTTP status HANDLE.NET's REST API gives ``code``: success is 201 when a write
    created something and 200 otherwise; "values not found" is 200 on a resolution and 400
    on any other operation; unlisted codes are 500."""
    if code is ResponseCode.SUCCESS:
        return 201 if created else 200
    if code is ResponseCode.VALUES_NOT_FOUND:
        return 200 if resolution else 400
    return _STATUS.get(code, 500)


class HandleError(Exception):
    """An operation ended with a Handle response code other than success."""

    def __init__(self, code: ResponseCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
