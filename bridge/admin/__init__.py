"""Administration: IdP lifecycle, admin tokens, the services behind the admin API and pages."""
