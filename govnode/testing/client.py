"""The HTTPS client tests and plugin authors use: the one `govnode client` uses."""

from govnode.cli.agency_client import AgencyClient, Response, tls_context

__all__ = ["AgencyClient", "Response", "tls_context"]
