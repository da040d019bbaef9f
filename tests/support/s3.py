"""A real S3 API for tests: ``moto_server`` on 127.0.0.1 (package ``moto[server]``), with signature checks on.

The server starts with authentication off, an IAM user with an S3 policy and its access key are made, then
authentication is switched on (``/moto-api/reset-auth``): from then on every request must carry a valid
SigV4 signature of that key (a wrong secret is ``SignatureDoesNotMatch``, an unknown key
``InvalidAccessKeyId``), exactly as a real store answers. boto3 (a test dependency only) makes buckets and
reads what Berth wrote, independently of Berth's own client. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth_cli.components import free_port
from tests.support.procs import wait_port

REGION = "us-east-1"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def moto_server_path() -> str | None:
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server")


@dataclass
class MotoS3:
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    access_key: str = ""
    secret_key: str = field(default="", repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> MotoS3:
        binary = moto_server_path()
        if binary is None:
            raise RuntimeError("moto_server is not installed (moto[server] is a test dependency)")
        for _ in range(attempts):
            self.port = free_port()
            log = self.log_path.open("ab")
            env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
            self.proc = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                wait_port(self.port, timeout=30)
                break
            except TimeoutError:
                self.stop()
        else:
            raise RuntimeError(f"moto_server did not start: {self.log_path.read_text()[-2000:]}")
        self._make_user()
        return self

    def _make_user(self) -> None:
        iam = self.client("iam", "unused", "unused")
        iam.create_user(UserName="berth")
        iam.put_user_policy(UserName="berth", PolicyName="s3", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName="berth")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    def client(self, service: str = "s3", access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(
                s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30
            ),
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """key -> size of every object listed under ``prefix``."""
        out: dict[str, int] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return out

    def uploads(self, bucket: str) -> list[str]:
        """Keys of the multipart uploads still open in ``bucket``."""
        return [u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {timeout}s")
