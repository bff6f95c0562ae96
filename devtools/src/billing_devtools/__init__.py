"""Development tools: the local SMTP sink (``python -m billing_devtools.mail_sink``) and the
helpers the tests share (``billing_devtools.testing``).

A workspace member of the root project's ``dev`` dependency group only: no service depends on
it, so ``uv sync --no-dev --package billing-<service>`` (the services' Dockerfiles) leaves it out
of every image.
"""
