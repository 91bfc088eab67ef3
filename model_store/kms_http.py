"""kms:Verify over plain HTTPS with SigV4: how the functions check a manifest's signature.

One call per model load, so no botocore (its import and the KMS service model cost a cold
start more than the call) and no crypto library in a layer: KMS does the verifying. The
endpoint is the key's own region's, or ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL``
(a moto server, say); credentials come from the environment as Lambda provides them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from model_store.exceptions import RegistryError
from model_store.registry.s3_http import Credentials, sign
from model_store.signing import kms_region
from model_store.tracing import subsegment

ATTEMPTS = 2
_RETRYABLE = {500, 502, 503, 504}
_INVALID_SIGNATURE = "KMSInvalidSignatureException"


class KmsHttpVerifier:
    """A Verifier (model_store.signing) that calls KMS directly."""

    def __init__(
        self,
        key_arn: str,
        *,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self._key_arn = key_arn
        self._environ = env
        self.region = (
            kms_region(key_arn) or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        )
        override = next(
            (
                env[name].strip().rstrip("/")
                for name in ("AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL")
                if env.get(name, "").strip()
            ),
            None,
        )
        suffix = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
        self.endpoint = override or f"https://kms.{self.region}.{suffix}"
        self._timeouts = (connect_timeout, read_timeout)

    @property
    def key_arn(self) -> str:
        return self._key_arn

    def verify(self, message: bytes, signature: bytes, algorithm: str) -> bool:
        body = json.dumps(
            {
                "KeyId": self._key_arn,
                "Message": base64.b64encode(message).decode(),
                "MessageType": "RAW",
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": algorithm,
            }
        ).encode()
        with subsegment("KMS", namespace="aws") as trace:
            trace.describe("operation", "Verify")
            trace.describe("key_id", self._key_arn)
            status, answer = self._call("TrentService.Verify", body)
            trace.answered(status)
        if status == 200:
            return answer.get("SignatureValid") is True
        kind = str(answer.get("__type", "")).rpartition("#")[2]
        if kind == _INVALID_SIGNATURE:
            return False
        raise RegistryError(
            f"KMS Verify with {self._key_arn} failed: {status} {kind or 'error'}: "
            f"{answer.get('message') or answer.get('Message') or ''}".rstrip(": ")
        )

    def _call(self, target: str, body: bytes) -> tuple[int, dict[str, object]]:
        credentials = Credentials.from_environment(self._environ)
        if credentials is None:
            raise RegistryError("KMS Verify: no AWS credentials in the environment")
        parts = urlsplit(self.endpoint)
        path = parts.path or "/"
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.1)
            headers = sign(
                method="POST",
                host=parts.netloc,
                path=path,
                query={},
                headers={"content-type": "application/x-amz-json-1.1", "x-amz-target": target},
                payload_sha256=hashlib.sha256(body).hexdigest(),
                credentials=credentials,
                region=self.region,
                now=time.gmtime(),
                service="kms",
            )
            connect, read = self._timeouts
            connection = (
                http.client.HTTPSConnection(parts.netloc, timeout=connect)
                if parts.scheme == "https"
                else http.client.HTTPConnection(parts.netloc, timeout=connect)
            )
            try:
                connection.request("POST", path, body=body, headers=headers)
                if connection.sock is not None:
                    connection.sock.settimeout(read)
                response = connection.getresponse()
                status, raw = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            finally:
                connection.close()
            if status in _RETRYABLE:
                last = RegistryError(f"KMS answered {status}")
                continue
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {}
            return status, answer if isinstance(answer, dict) else {}
        raise RegistryError(
            f"KMS Verify with {self._key_arn} failed: {type(last).__name__}: {last}"
        ) from last
