"""A login: /authorize starts it at an IdP (``start``), the IdP's answer comes back to the assertion
consumer (``acs``), and a completion decides what it becomes (``completions``)."""
