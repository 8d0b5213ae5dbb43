"""Background work: how a job runs once across nodes (``leases``) and which jobs the bridge runs
(``standard``)."""
