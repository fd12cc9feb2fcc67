"""Security headers on every answer: the page runs only its own files, in no frame, never sniffed.

An answer that sets its own Content-Security-Policy (the morning report's page, web/reports.py:
stricter still, with its own style hashes) keeps it: two policies would both be enforced, and the
console's would refuse the report's inline style."""

def csp(importmap: str) -> str:
    """No inline script but the page's own import map, allowed by its hash (pagecode.py)."""
    return (f"default-src 'self'; script-src 'self' {importmap}; style-src 'self'; img-src 'self' blob: data:; "
            "connect-src 'self'; media-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """Pure ASGI middleware (not BaseHTTPMiddleware, which would buffer the live stream)."""

    def __init__(self, app, hsts: bool, importmap: str) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", csp(importmap).encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                own = {name.lower() for name, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [h for h in self.headers if h[0] not in own]
            await send(message)
        await self.app(scope, receive, with_headers)
