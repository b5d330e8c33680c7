"""Artifacts in an S3 bucket (AWS, MinIO, Ceph...), for farms spread across networks.

The object ``<prefix>/<digest>.tar.gz`` appears only once its upload completed
(single PUT or multipart), so readers see it whole or not at all, and two
submitters of the same digest write the same bytes. The endpoint, region and
credentials come from boto3's own chain (``AWS_ENDPOINT_URL_S3``,
``AWS_ACCESS_KEY_ID``, profiles, instance roles), never from the location, which
travels in every task and lands in the results store. S3 has no per-object
expiry to refresh: give the bucket a lifecycle rule longer than any run.
boto3 is an optional dependency (``pytest-farm[s3]``), imported only when a store opens.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from farm.artifacts.base import (
    CHUNK_BYTES,
    ArtifactError,
    ArtifactMissing,
    ChunkedStore,
    check_digest,
    one_line,
    read_verified,
)

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Artifacts(ChunkedStore):
    """Snapshots as objects under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = self._connect()

    def _connect(self) -> Any:
        try:
            import boto3
            from boto3.exceptions import Boto3Error
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as e:
            raise ArtifactError(
                f'artifact store {self.location} needs boto3: pip install "pytest-farm[s3]"'
            ) from e
        # What the S3 conversation can raise: botocore's errors, boto3's transfer
        # errors, and the socket's own.
        self._errors: tuple[type[Exception], ...] = (
            BotoCoreError,
            ClientError,
            Boto3Error,
            OSError,
        )
        try:
            # A session of its own: boto3's default session is not safe across threads.
            return boto3.session.Session().client(
                "s3",
                config=Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard"}),
            )
        except (BotoCoreError, ValueError) as e:  # ValueError: a malformed endpoint URL
            raise ArtifactError(f"artifact store {self.location}: {one_line(e)}") from e

    def key(self, digest: str) -> str:
        name = f"{check_digest(digest, self.location)}.tar.gz"
        return f"{self.prefix}/{name}" if self.prefix else name

    def has(self, digest: str) -> bool:
        key = self.key(digest)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self._errors as e:
            if _code(e) in _NOT_FOUND:
                return False
            raise self._error("cannot look up", digest, e) from e
        return True

    def put(self, digest: str, path: Path) -> int:
        key = self.key(digest)
        if self.has(digest):
            return 0
        # upload_file reads the file itself, so it is hashed beforehand, never published
        # under a digest that is not its own.
        size = sum(len(chunk) for chunk in read_verified(path, digest, self.location))
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": "application/gzip", "Metadata": {"sha256": digest}},
            )
        except self._errors as e:
            raise self._error("cannot upload", digest, e) from e
        return size

    def _chunks(self, digest: str, max_bytes: int) -> Generator[bytes, None, None]:
        key = self.key(digest)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self._errors as e:
            if _code(e) in _NOT_FOUND:
                raise ArtifactMissing(f"artifact store {self.location} has no {digest}") from e
            raise self._error("cannot fetch", digest, e) from e
        body = response["Body"]
        try:
            length = response.get("ContentLength")
            if isinstance(length, int) and length > max_bytes:  # refused before reading
                raise ArtifactError(
                    f"artifact store {self.location}: refused {digest}: its {length} bytes "
                    f"are over the limit of {max_bytes} bytes"
                )
            chunks = body.iter_chunks(CHUNK_BYTES)
            while True:
                try:
                    chunk = next(chunks, b"")
                except self._errors as e:
                    raise self._error("cannot fetch", digest, e) from e
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _error(self, action: str, digest: str, e: Exception) -> ArtifactError:
        detail = one_line(e)
        if _code(e) in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            detail += " (check the AWS credentials)"
        return ArtifactError(f"artifact store {self.location}: {action} {digest}: {detail}")


def _code(e: BaseException) -> str:
    """The S3 error code of a botocore ClientError, else ''."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
