"""Request buffering of a web service: Traefik reads a request's whole body before forwarding it.

For an application that answers before it has read the request's body (a CGI script, a server that
rejects or answers on the headers alone): without buffering, Go's reverse proxy in Traefik may still be
writing the body when the answer comes, and closes the connection to the application while copying the
answer, so the client gets it cut (about 1 in 5,000 small POSTs under CPU pressure). With it, the
application receives the body in one piece before it answers.

Not for streamed answers: Traefik's ``buffering`` middleware holds the answer too until it is complete
(in memory up to 1 MiB, then in a temporary file), so server-sent events, long polls and progressive
downloads reach the client only at their end. A request body above ``max_body_mb`` is answered 413.
"""

from __future__ import annotations

from pydantic import Field

from berth_common.catalogue.spec_base import Spec

MAX_BODY_MB = 1024
MEM_BODY_BYTES = 1 << 20  # a body up to this is held in memory, a larger one in a temporary file


class RequestBuffering(Spec):
    """Read each request's whole body (at most ``max_body_mb`` MiB, else 413) before forwarding it."""

    max_body_mb: int = Field(default=10, ge=1, le=MAX_BODY_MB)

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb << 20
