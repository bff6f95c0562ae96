"""Run the portal (pages on its HTTP port, ``BILLING_PORTAL_HTTP_PORT``, 8106 by default)."""

import uvicorn

from billing_portal.app import create_app
from billing_portal.settings import PortalSettings

settings = PortalSettings()
uvicorn.run(
    create_app(settings),
    host=settings.http_host,
    port=settings.http_port,
    log_level=settings.log_level.lower(),
    proxy_headers=True,
    forwarded_allow_ips=settings.trusted_proxies,
    timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
)
