"""A small S3 client of Berth's own: AWS Signature V4 (:mod:`.signing`), the requests Berth sends as data
(:mod:`.requests`) and one httpx adapter that executes them (:mod:`.client`, needs ``httpx``).

No SDK: boto3/botocore are not needed at run time.
"""

from berth_common.s3.requests import Bucket, Listing, S3Object, S3Request, S3RequestError
from berth_common.s3.signing import Credentials

__all__ = ["Bucket", "Credentials", "Listing", "S3Object", "S3Request", "S3RequestError"]
