"""The portal: the customer panel and the operator console, pages over the services' APIs."""
