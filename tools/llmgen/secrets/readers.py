"""Read-only clients of the secret backends, for `llmgen secrets check`.

One reader per backend, built from the environment's `secretStores.<backend>`
settings and the SDK's standard credentials:

- Vault/OpenBao (hvac): `VAULT_ADDR` (else the catalog's `server`),
  `VAULT_TOKEN` (or `~/.vault-token`), `VAULT_CACERT`;
- AWS Secrets Manager (boto3): the default credential chain (`AWS_PROFILE`,
  `AWS_ACCESS_KEY_ID`..., SSO, instance roles) and `AWS_ENDPOINT_URL*`;
- GCP Secret Manager (google-cloud-secret-manager): Application Default
  Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, metadata server).

`lookup` answers only "is it there, and which keys does it hold": values are
parsed and dropped inside the reader, so no caller can print one. A failure
of the backend as a whole (down, no credentials, credentials refused) raises
`BackendError`; per-secret outcomes are a `Lookup`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from llmgen.catalog.guard import pattern_reason
from llmgen.catalog.secret_backends import RemoteRef, vault_mount

TIMEOUT_SECONDS = 15


class BackendError(Exception):
    """The backend as a whole cannot answer (message names it, never a value)."""


@dataclass(frozen=True)
class Lookup:
    """What a read learned about one secret: presence and key names only."""

    status: Literal["found", "missing", "denied"]
    is_object: bool = False
    keys: frozenset[str] = frozenset()
    has_value: bool = False


MISSING = Lookup("missing")
DENIED = Lookup("denied")


def describe(payload: str | bytes | None) -> Lookup:
    """Reduce a payload to its shape: JSON object keys, and whether it is non-empty."""
    if payload is None:
        return Lookup("found")
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return Lookup("found", True, frozenset(str(k) for k in parsed), bool(text))
    return Lookup("found", False, frozenset(), bool(text))


def _brief(exc: BaseException) -> str:
    """An exception as `Type: first line`, short; SDK errors carry no secret values."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"timed out after {TIMEOUT_SECONDS}s"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (refused, unresolvable or reset)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SecretReader(Protocol):
    """A backend client: where it reads from, and one lookup per remote key."""

    address: str

    def lookup(self, ref: RemoteRef) -> Lookup: ...


# ------------------------------------------------------------------- vault


class VaultReader:
    """KV v2 reads through hvac; the mount is the first segment of `path`."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            import hvac
        except ImportError:  # pragma: no cover - hvac is a core dependency
            raise BackendError("hvac is not installed") from None
        address = os.environ.get("VAULT_ADDR") or str(settings["server"])
        if pattern_reason(address):
            # Never print or log it; validate refuses the catalog's `server` the same way.
            raise BackendError(
                "VAULT_ADDR holds a password (user:password@) or another credential; "
                "give the token in VAULT_TOKEN and the bare address in VAULT_ADDR"
            )
        self.address = address
        self.mount, _ = vault_mount(str(settings["path"]))
        verify: bool | str = os.environ.get("VAULT_CACERT") or True
        self._client = hvac.Client(url=self.address, verify=verify, timeout=TIMEOUT_SECONDS)
        if not self._client.token:
            raise BackendError(
                f"no Vault token for {self.address}: set VAULT_TOKEN (or log in with 'bao login')"
            )
        self._checked = False

    def _authenticate(self) -> None:
        import hvac.exceptions
        import requests

        try:
            ok = self._client.is_authenticated()
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise BackendError(f"cannot reach vault at {self.address}: {_brief(exc)}") from None
        if not ok:
            raise BackendError(f"vault at {self.address} refused the token in VAULT_TOKEN")
        self._checked = True

    def lookup(self, ref: RemoteRef) -> Lookup:
        import hvac.exceptions
        import requests

        if not self._checked:
            self._authenticate()
        try:
            response = self._client.secrets.kv.v2.read_secret_version(
                path=ref.key, mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return MISSING
        except hvac.exceptions.Forbidden:
            return DENIED
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise BackendError(f"cannot read from vault at {self.address}: {_brief(exc)}") from None
        data = response.get("data", {}).get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            return Lookup("found")
        # KV v2 always stores a map; presence of the key is what matters.
        return Lookup("found", True, frozenset(str(k) for k in data), bool(data))


# --------------------------------------------------------------------- aws

# Error codes that mean our credentials, not the secret, are the problem.
_AWS_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


class AwsReader:
    """Secrets Manager GetSecretValue through boto3, in the store's region."""

    def __init__(self, settings: Mapping[str, Any], client: Any = None) -> None:
        self.region = str(settings["region"])
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise BackendError(
                    "boto3 is not installed; install llmgen[aws] to check AWS secrets"
                ) from None
            config = Config(
                connect_timeout=TIMEOUT_SECONDS,
                read_timeout=TIMEOUT_SECONDS,
                retries={"max_attempts": 2},
            )
            client = boto3.session.Session().client(
                "secretsmanager", region_name=self.region, config=config
            )
        self._client = client
        endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
        self.address = str(endpoint or f"secretsmanager.{self.region}")

    def lookup(self, ref: RemoteRef) -> Lookup:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            response = self._client.get_secret_value(SecretId=ref.key)
        except NoCredentialsError:
            raise BackendError(
                "no AWS credentials in the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ResourceNotFoundException":
                return MISSING
            if code in ("AccessDeniedException", "DecryptionFailure"):
                return DENIED
            if code in _AWS_CREDENTIAL_CODES:
                raise BackendError(
                    f"AWS refused the credentials in the environment ({code})"
                ) from None
            raise BackendError(f"cannot read from {self.address}: {code or _brief(exc)}") from None
        except BotoCoreError as exc:
            raise BackendError(f"cannot reach {self.address}: {_brief(exc)}") from None
        if "SecretString" in response:
            return describe(response["SecretString"])
        return describe(response.get("SecretBinary"))


# --------------------------------------------------------------------- gcp


def gcp_version_name(project: str, secret_id: str) -> str:
    """The resource name AccessSecretVersion reads: the latest enabled version."""
    return f"projects/{project}/secrets/{secret_id}/versions/latest"


class GcpReader:
    """Secret Manager AccessSecretVersion (latest) with Application Default Credentials."""

    def __init__(
        self, settings: Mapping[str, Any], client: Any = None, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.project = str(settings["projectID"])
        self.timeout = timeout
        self.address = f"secretmanager.googleapis.com (project {self.project})"
        if client is None:
            try:
                import google.auth.exceptions
                from google.cloud import secretmanager
            except ImportError:
                raise BackendError(
                    "google-cloud-secret-manager is not installed; "
                    "install llmgen[gcp] to check GCP secrets"
                ) from None
            try:
                client = secretmanager.SecretManagerServiceClient()
            except google.auth.exceptions.GoogleAuthError as exc:
                raise BackendError(
                    "no usable Google credentials (GOOGLE_APPLICATION_CREDENTIALS or "
                    f"'gcloud auth application-default login'): {_brief(exc)}"
                ) from None
        self._client = client

    def lookup(self, ref: RemoteRef) -> Lookup:
        from google.api_core import exceptions as gexc
        from google.api_core.retry import Retry
        from google.auth.exceptions import GoogleAuthError

        try:
            response = self._client.access_secret_version(
                request={"name": gcp_version_name(self.project, ref.key)},
                retry=Retry(timeout=self.timeout),
                timeout=self.timeout,
            )
        except gexc.NotFound:
            return MISSING
        except gexc.PermissionDenied:
            return DENIED
        except gexc.FailedPrecondition:
            return MISSING  # the latest version is disabled or destroyed
        except gexc.Unauthenticated:
            raise BackendError("Google refused the credentials in the environment") from None
        except GoogleAuthError as exc:
            raise BackendError(f"cannot authenticate to Google: {_brief(exc)}") from None
        except (gexc.GoogleAPIError, gexc.RetryError) as exc:
            raise BackendError(f"cannot reach {self.address}: {_brief(exc)}") from None
        return describe(response.payload.data)


def default_readers() -> dict[str, Callable[[Mapping[str, Any]], SecretReader]]:
    """Reader factories by backend name, using each SDK's standard environment."""
    return {"vault": VaultReader, "aws": AwsReader, "gcp": GcpReader}
