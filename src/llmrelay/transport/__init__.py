"""HTTP transport, SSE decoding and the transport interface."""

from .base import HttpRequest, HttpResponse, MockTransport, StreamingResponse, Timeouts, Transport
from .sse import SSEDecoder, SSEEvent

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "MockTransport",
    "SSEDecoder",
    "SSEEvent",
    "StreamingResponse",
    "Timeouts",
    "Transport",
]
