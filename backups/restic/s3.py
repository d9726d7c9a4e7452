"""The one module that talks to S3 (boto3): making sure the backup bucket exists.

restic does everything else over S3 itself. The client settings are the ones
S3-compatible services accept (DigitalOcean Spaces, MinIO, moto): path-style
addressing and checksums only where the operation requires them (newer
botocore adds CRC checksums by default, which some of them reject).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from farm.errors import FarmError

log = logging.getLogger(__name__)

CLIENT_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
)
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_RETRYABLE_CODES = {"500", "502", "503", "504", "SlowDown", "RequestTimeout", "InternalError"}


class S3Error(FarmError):
    """The object storage refused, or could not be reached."""


def client(endpoint: str, region: str, access_key: str, secret_key: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region or "us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=CLIENT_CONFIG,
    )


def _error(exc: Exception, what: str) -> S3Error:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        return S3Error(f"{what}: {message} ({code})", retryable=code in _RETRYABLE_CODES)
    # Connection refused, DNS, timeouts: the storage may come back.
    return S3Error(f"{what}: {exc}", retryable=True)


def ensure_bucket(
    endpoint: str, bucket: str, region: str, access_key: str, secret_key: str
) -> bool:
    """Create the bucket unless it exists; True when this call created it."""
    s3 = client(endpoint, region, access_key, secret_key)
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in _MISSING:
            raise _error(exc, f"Checking bucket {bucket} at {endpoint}") from exc
    except (BotoCoreError, EndpointConnectionError) as exc:
        raise _error(exc, f"Reaching {endpoint} for bucket {bucket}") from exc
    params: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
            return False  # created by another worker meanwhile
        raise _error(exc, f"Creating bucket {bucket} at {endpoint}") from exc
    except BotoCoreError as exc:
        raise _error(exc, f"Creating bucket {bucket} at {endpoint}") from exc
    log.info("created bucket %s at %s", bucket, endpoint)
    return True
