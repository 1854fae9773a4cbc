"""S3 errors on the wire: each error code's HTTP status, and the `<Error>` document."""

from __future__ import annotations

from xml.sax.saxutils import escape

from jfs.app.objectview import ObjectError

STATUS = {
    "AccessDenied": 403, "InvalidAccessKeyId": 403, "SignatureDoesNotMatch": 403, "RequestTimeTooSkewed": 403,
    "AuthorizationHeaderMalformed": 400, "AuthorizationQueryParametersError": 400,
    "NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404,
    "BucketNotEmpty": 409, "BucketAlreadyOwnedByYou": 409, "BucketAlreadyExists": 409,
    "XMinioObjectExistsAsDirectory": 409, "XMinioParentIsObject": 400, "XMinioInvalidObjectName": 400,
    "InvalidBucketName": 400, "KeyTooLongError": 400, "InvalidArgument": 400, "InvalidRequest": 400,
    "InvalidRange": 416, "PreconditionFailed": 412, "NotModified": 304,
    "BadDigest": 400, "InvalidDigest": 400, "XAmzContentSHA256Mismatch": 400, "IncompleteBody": 400,
    "EntityTooLarge": 400, "EntityTooSmall": 400, "InvalidPart": 400, "InvalidPartOrder": 400,
    "MalformedXML": 400, "MissingContentLength": 411, "RequestTimeout": 400, "MethodNotAllowed": 405,
    "NotImplemented": 501, "XMinioStorageFull": 507, "ServiceUnavailable": 503, "SlowDown": 503,
    "InternalError": 500, "NoSuchTagSet": 404, "InvalidTag": 400, "MetadataTooLarge": 400,
}


class S3Error(ObjectError):
    """An error the gateway answers with (the adapter's own, e.g. of authentication or parsing)."""


def status_of(code: str) -> int:
    return STATUS.get(code, 400)


def error_xml(err: ObjectError, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(err.code)}</Code><Message>{escape(err.message or err.code)}</Message>"
        f"<Resource>{escape(err.resource or resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
