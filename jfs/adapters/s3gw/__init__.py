"""The S3 gateway: a driving adapter that serves a jfs volume over the S3 API (`jfs gateway`).

HTTP, SigV4, payload framing and XML live here; what buckets and objects mean on a file system is
`jfs.app.objectview`.
"""
