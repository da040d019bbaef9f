"""AWS Signature V4 and the S3 requests Berth sends, as exact data (pure): AWS's published example values
first (the signature suite's ``get-vanilla``, the S3 documentation's GET with a range and ListObjects, the
derived signing key), then every operation's request for a fixed time, path style and virtual-host style."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from berth_common.s3 import requests as rq
from berth_common.s3.signing import (
    EMPTY_SHA256,
    Credentials,
    authorization,
    canonical_query,
    canonical_request,
    signing_key,
    string_to_sign,
)

SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
S3_DOCS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
DOCS_TIME = datetime(2013, 5, 24, tzinfo=UTC)


def test_the_derived_signing_key_is_awss_example() -> None:
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_get_vanilla_of_the_signature_suite() -> None:
    now = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    canonical, _ = canonical_request("GET", "/", [], headers, EMPTY_SHA256)
    assert canonical == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EMPTY_SHA256
    )
    assert string_to_sign(canonical, now, "us-east-1", "service") == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    assert authorization(SUITE, "GET", "/", [], headers, EMPTY_SHA256, now, "us-east-1", "service") == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_the_s3_documentations_get_object_with_a_range() -> None:
    bucket = rq.Bucket("https://s3.amazonaws.com", "examplebucket", "us-east-1", path_style=False)
    req = rq.signed("GetObject", bucket, S3_DOCS, DOCS_TIME, "GET", "test.txt", extra={"Range": "bytes=0-9"})
    assert req.url == "https://examplebucket.s3.amazonaws.com/test.txt"
    assert req.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_the_s3_documentations_list_objects() -> None:
    bucket = rq.Bucket("https://s3.amazonaws.com", "examplebucket", "us-east-1", path_style=False)
    req = rq.signed("ListObjects", bucket, S3_DOCS, DOCS_TIME, "GET", "", [("max-keys", "2"), ("prefix", "J")])
    assert req.url == "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"
    assert req.headers["authorization"].endswith(
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_query_and_path_are_encoded_as_sigv4_wants() -> None:
    assert canonical_query([("prefix", "a b/c~"), ("list-type", "2"), ("uploads", "")]) == (
        "list-type=2&prefix=a%20b%2Fc~&uploads="
    )
    bucket = rq.Bucket("http://127.0.0.1:9000", "backups")
    assert bucket.path("team 1/db+x.dump.gz") == "/backups/team%201/db%2Bx.dump.gz"
    assert bucket.host == "127.0.0.1:9000"


NOW = datetime(2026, 12, 5, 3, 0, 0, tzinfo=UTC)
CREDS = Credentials("AKIDTEST", "secret/key+value")
PATH = rq.Bucket("http://127.0.0.1:9000", "backups", "eu-west-1", path_style=True)
VHOST = rq.Bucket("https://s3.eu-west-1.amazonaws.com", "backups", "eu-west-1", path_style=False)


def _auth(signature: str, signed: str = "host;x-amz-content-sha256;x-amz-date") -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIDTEST/20261205/eu-west-1/s3/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def _expected(method: str, url: str, host: str, body: bytes, extra: dict[str, str], sig: str, signed: str) -> dict:
    headers = {
        "host": host,
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-amz-date": "20261205T030000Z",
        **extra,
        "authorization": _auth(sig, signed),
    }
    return {"method": method, "url": url, "headers": headers, "body": body}


def _shape(req: rq.S3Request) -> dict:
    return {"method": req.method, "url": req.url, "headers": req.headers, "body": req.body}


def test_every_operation_path_style() -> None:
    key = "t1/db/2026-12-05T030000Z.dump.gz"
    base = "http://127.0.0.1:9000/backups/t1/db/2026-12-05T030000Z.dump.gz"
    host = "127.0.0.1:9000"
    std = "host;x-amz-content-sha256;x-amz-date"
    with_len = "content-length;host;x-amz-content-sha256;x-amz-date"
    cases = [
        (rq.put_object(PATH, CREDS, NOW, key, b"data"), "PUT", base, b"data", {"content-length": "4"}, with_len),
        (rq.head_object(PATH, CREDS, NOW, key), "HEAD", base, b"", {}, std),
        (rq.get_object(PATH, CREDS, NOW, key), "GET", base, b"", {}, std),
        (rq.delete_object(PATH, CREDS, NOW, key), "DELETE", base, b"", {}, std),
        (rq.create_multipart(PATH, CREDS, NOW, key), "POST", base + "?uploads=", b"", {}, std),
        (
            rq.upload_part(PATH, CREDS, NOW, key, "up/1", 2, b"part"),
            "PUT",
            base + "?partNumber=2&uploadId=up%2F1",
            b"part",
            {"content-length": "4"},
            with_len,
        ),
        (
            rq.abort_multipart(PATH, CREDS, NOW, key, "up/1"),
            "DELETE",
            base + "?uploadId=up%2F1",
            b"",
            {},
            std,
        ),
        (
            rq.list_objects(PATH, CREDS, NOW, "t1/db/"),
            "GET",
            "http://127.0.0.1:9000/backups?list-type=2&max-keys=1000&prefix=t1%2Fdb%2F",
            b"",
            {},
            std,
        ),
    ]
    for req, method, url, body, extra, signed in cases:
        sig = req.headers["authorization"].rsplit("Signature=", 1)[1]
        assert _shape(req) == _expected(method, url, host, body, extra, sig, signed), req.operation
        assert len(sig) == 64
    # the signatures are those of an independent computation of the canonical request
    put = cases[0][0]
    canonical, _ = canonical_request(
        "PUT",
        "/backups/t1/db/2026-12-05T030000Z.dump.gz",
        [],
        {k: v for k, v in put.headers.items() if k != "authorization"},
        hashlib.sha256(b"data").hexdigest(),
    )
    assert canonical.splitlines()[:3] == ["PUT", "/backups/t1/db/2026-12-05T030000Z.dump.gz", ""]


def test_complete_multipart_lists_the_parts_in_order() -> None:
    req = rq.complete_multipart(VHOST, CREDS, NOW, "k.gz", "u1", [(2, '"b"'), (1, '"a"')])
    assert req.url == "https://backups.s3.eu-west-1.amazonaws.com/k.gz?uploadId=u1"
    assert req.body == (
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
        b"<Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"
    )
    assert req.headers["host"] == "backups.s3.eu-west-1.amazonaws.com"
    assert req.headers["content-type"] == "application/xml"
    assert (
        "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date"
        in (req.headers["authorization"])
    )


def test_the_secret_key_is_never_in_a_request_or_a_repr() -> None:
    req = rq.put_object(PATH, CREDS, NOW, "k", b"x")
    assert "secret/key+value" not in repr(req) + str(req.headers) + req.url
    assert "secret/key+value" not in repr(CREDS)


def test_answers_are_parsed() -> None:
    error = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code>'
        b"<Message>The specified bucket does not exist</Message><BucketName>x</BucketName></Error>"
    )
    assert rq.parse_error(error) == ("NoSuchBucket", "The specified bucket does not exist")
    assert rq.parse_error(b"") == ("", "")
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    initiate = f"<InitiateMultipartUploadResult {ns}><Bucket>b</Bucket><Key>k</Key><UploadId>abc</UploadId>"
    assert rq.parse_upload_id((initiate + "</InitiateMultipartUploadResult>").encode()) == "abc"
    listing = (
        f"<ListBucketResult {ns}><IsTruncated>true</IsTruncated><NextContinuationToken>n1</NextContinuationToken>"
        '<Contents><Key>a/1.gz</Key><LastModified>2026-12-05T03:00:00.000Z</LastModified><ETag>"e"</ETag>'
        "<Size>12</Size></Contents></ListBucketResult>"
    ).encode()
    assert rq.parse_listing(listing) == rq.Listing([rq.S3Object("a/1.gz", 12, "2026-12-05T03:00:00.000Z", '"e"')], "n1")


@pytest.mark.parametrize("endpoint", ["ftp://x", "http://host/path", "http://user:pw@host", "127.0.0.1:9000"])
def test_a_bad_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(rq.S3RequestError):
        rq.Bucket(endpoint, "backups")


def test_a_bad_bucket_is_refused() -> None:
    with pytest.raises(rq.S3RequestError):
        rq.Bucket("http://127.0.0.1:9000", "Bad_Bucket")
