"""S3 and local-folder access for batch jobs: one client factory and one `Location` type.

A re-audit reads a manifest, images and a catalog, and writes result parts, each of which
may live in S3 or on a local disk. `Location` hides the difference so the job code has one
path. Every S3 client is built by `make_client`, so the endpoint (a private S3, MinIO, moto)
and the retry policy are set in one place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_ATTEMPTS = 5
"""botocore "standard" retries: throttling and 5xx answers are retried with backoff."""


class FetchError(Exception):
    """An object could not be read; `reason` is a short machine-friendly cause."""

    def __init__(self, uri: str, reason: str, detail: str = "") -> None:
        self.uri, self.reason, self.detail = uri, reason, detail
        super().__init__(f"{reason}: {uri}" + (f" ({detail})" if detail else ""))


def make_client(endpoint_url: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Any:
    """A boto3 S3 client; `endpoint_url` falls back to AWS_ENDPOINT_URL(_S3) like the AWS CLI."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts}, connect_timeout=10, read_timeout=60)
    return boto3.client("s3", endpoint_url=endpoint or None, config=config)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URL: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URL without a bucket: {uri!r}")
    return bucket, key


def join(base: str, name: str) -> str:
    """`name` relative to a folder or prefix; absolute paths and s3:// URLs are kept as they are."""
    if is_s3(name) or os.path.isabs(name):
        return name
    if is_s3(base):
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


def parent(uri: str) -> str:
    """The folder or prefix holding `uri`."""
    if is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return str(Path(uri).resolve().parent)


@dataclass
class Location:
    """A local folder or an S3 prefix, read and written through the same methods."""

    uri: str
    endpoint_url: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:  # clients do not pickle; each process makes its own
        return {k: v for k, v in self.__dict__.items() if k != "_client"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.endpoint_url, self.max_attempts)
        return self._client

    def child(self, name: str) -> str:
        return join(self.uri, name)

    def read(self, uri_or_name: str) -> bytes:
        """Bytes of an object or file; raises `FetchError` (missing, empty, denied...), never returns b""."""
        uri = self.child(uri_or_name)
        if is_s3(uri):
            data = self._read_s3(uri)
        else:
            try:
                data = Path(uri).read_bytes()
            except FileNotFoundError:
                raise FetchError(uri, "missing") from None
            except OSError as exc:
                raise FetchError(uri, "unreadable", str(exc)) from exc
        if not data:  # an empty object is a failed upload or a lost read, never an image
            raise FetchError(uri, "empty")
        return data

    def _read_s3(self, uri: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(uri)
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
            data = response["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FetchError(uri, "missing") from None
            raise FetchError(uri, "s3_error", f"{code}: {exc}") from exc
        except BotoCoreError as exc:  # connection errors that survived the retries
            raise FetchError(uri, "s3_error", str(exc)) from exc
        expected = response.get("ContentLength")
        if expected is not None and len(data) != expected:
            raise FetchError(uri, "truncated", f"{len(data)} of {expected} bytes")
        return data

    def exists(self, name: str) -> bool:
        try:
            self.read(name)
        except FetchError:
            return False
        return True

    def write(self, name: str, data: bytes) -> str:
        """Write atomically (a reader never sees half a file); returns the full URI."""
        uri = self.child(name)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
            return uri
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return uri

    def list(self, folder: str, suffix: str = "") -> Iterator[str]:
        """Names (relative to this location) under `folder`; only for small folders such as result parts."""
        uri = self.child(folder)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            prefix = key.rstrip("/") + "/"
            base = split_s3(self.uri)[1].rstrip("/")
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(suffix):
                        yield obj["Key"][len(base) + 1 :] if base else obj["Key"]
            return
        path = Path(uri)
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if entry.is_file() and entry.name.endswith(suffix) and not entry.name.startswith("."):
                    yield f"{folder.rstrip('/')}/{entry.name}"
