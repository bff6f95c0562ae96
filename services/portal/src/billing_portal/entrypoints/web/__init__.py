"""HTTP entrypoint: the portal's pages (customer panel and operator console), server-rendered.

Routes decode the form or query, call the billing API as the signed-in user (the API decides
what that user may see: another customer's invoice answers 404 there, and so here) or an
account use case, and render a template. Sessions are signed cookies (HttpOnly, SameSite=Lax,
Secure outside local development) holding the user's email, a CSRF token and an absolute
expiry; every form that changes something carries the CSRF token. Every answer carries a
Content-Security-Policy without inline scripts, and pages are never cached.

One module per area: :mod:`.sign_in` (health, sign-in, the password link, the language),
:mod:`.panel` (the customer's invoices, their files, the pay pop-up, this month's usage),
:mod:`.account` (the customer's account settings), :mod:`.console` (the operators' report and
invoice generation), :mod:`.console_invoices` (customer invoices and the changes to one);
:mod:`.common` holds what every page uses (the session and its user, CSRF, rendering) and
:mod:`.app` puts them together.
"""

from billing_portal.entrypoints.web.app import portal_app

__all__ = ["portal_app"]
