"""Ending a login: at the client's request (``rp_initiated``, which can continue to the IdP's
Single Logout) and at the IdP's (``single_logout``)."""
