"""Object stores as `llmgen weights check` reads them: S3 (boto3) and GCS (google-cloud-storage).

A store answers two questions about one object: its metadata (size, the
`sha256` user metadata the sync Job writes, and the KMS key that encrypts it),
and, for the manifest only, its bytes. Both SDKs take their standard
credentials and endpoints from the environment (`AWS_*`, `AWS_ENDPOINT_URL`;
Application Default Credentials, `STORAGE_EMULATOR_HOST`), so the same code
runs against the clouds and against local servers in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

#: the user-metadata key holding a file's SHA-256 (hex), written by the sync Job
SHA256_METADATA = "sha256"
#: manifests are small (one line per file); refuse to read anything bigger
MAX_MANIFEST_BYTES = 1 << 20


class StoreError(Exception):
    """The store could not be read (unreachable, refused, or a malformed answer)."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    #: the `sha256` user metadata; "" when the object carries none
    sha256: str
    #: the KMS key that encrypts the object, as the store reports it; "" when none
    kms_key: str


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""

    def read(self, bucket: str, key: str, limit: int) -> bytes:
        """The object's bytes (at most `limit`; more is a StoreError)."""


class S3Store:
    """S3 through boto3's default credential chain and endpoint settings."""

    def __init__(self, client: Any = None, region: str | None = None) -> None:
        if client is None:
            try:
                import boto3
            except ImportError:
                raise StoreError("boto3 is not installed; install llmgen[aws]") from None
            client = boto3.client("s3", region_name=region)
        self.client = client

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            got = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"s3://{bucket}/{key}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"s3://{bucket}: {exc}") from None
        kms = got.get("SSEKMSKeyId", "") if got.get("ServerSideEncryption") == "aws:kms" else ""
        return ObjectInfo(
            size=int(got.get("ContentLength", 0)),
            sha256=str(got.get("Metadata", {}).get(SHA256_METADATA, "")),
            kms_key=str(kms),
        )

    def read(self, bucket: str, key: str, limit: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            got = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")
            data: bytes = got["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"s3://{bucket}/{key}: {exc}") from None
        if len(data) > limit:
            raise StoreError(f"s3://{bucket}/{key}: larger than {limit} bytes")
        return data


class GcsStore:
    """Cloud Storage through google-cloud-storage (ADC, or `STORAGE_EMULATOR_HOST`)."""

    def __init__(self, client: Any = None, project: str | None = None) -> None:
        if client is None:
            try:
                import google.auth.exceptions
                import google.cloud.storage as gcs
            except ImportError:
                raise StoreError(
                    "google-cloud-storage is not installed; install llmgen[gcp]"
                ) from None
            try:
                client = gcs.Client(project=project)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise StoreError(f"no usable Google credentials: {exc}") from None
        self.client = client

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        from google.api_core import exceptions as gexc

        try:
            blob = self.client.bucket(bucket).get_blob(key)
        except gexc.GoogleAPIError as exc:
            raise StoreError(f"gs://{bucket}/{key}: {exc}") from None
        if blob is None:
            return None
        return ObjectInfo(
            size=int(blob.size or 0),
            sha256=str((blob.metadata or {}).get(SHA256_METADATA, "")),
            kms_key=str(blob.kms_key_name or ""),
        )

    def read(self, bucket: str, key: str, limit: int) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            data: bytes = self.client.bucket(bucket).blob(key).download_as_bytes(start=0, end=limit)
        except gexc.GoogleAPIError as exc:
            raise StoreError(f"gs://{bucket}/{key}: {exc}") from None
        if len(data) > limit:
            raise StoreError(f"gs://{bucket}/{key}: larger than {limit} bytes")
        return data
