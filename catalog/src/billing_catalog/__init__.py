"""The catalog: the pipeline's one shared kernel.

Who the customers are, which cloud accounts they own, how they are priced (price lists,
rebilling policy, FX rates), what they subscribe to, which tax rates apply and who invoices
them. Every service that needs it imports this package; none reads its collections directly.

* :mod:`billing_catalog.models`: the catalog file and its documents (``billing catalog apply``);
* :mod:`billing_catalog.pricing`: price lists, rebilling policy, FX rates (documents validated
  on apply; rating prices records with them);
* :mod:`billing_catalog.store`: the ``catalog_*`` collections, their writer (used by invoicing:
  apply, contacts, language) and their reader (rating, ingest, notify, invoicing).

A shared kernel is a deliberate exception to "no service reads another's storage": a change
here is a change for every service that imports it, made in one commit with its readers.
"""
