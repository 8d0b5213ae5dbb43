"""The bridge's background jobs (see bridge.jobs.leases for how they run once across nodes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.idps.lifecycle import IdpAdmin
from bridge.jobs.leases import Job, Scheduler
from bridge.store.maintenance import purge_expired

if TYPE_CHECKING:
    from bridge.services import Services


def standard_jobs(bridge: Services, idps: IdpAdmin) -> list[Job]:
    jobs = [
        Job("purge_expired", 300, lambda: purge_expired(bridge.db, now=bridge.clock.now())),
        Job("metadata_refresh", 300, idps.refresh_due),
    ]
    days = bridge.settings.key_rotation_days
    if days:
        jobs.append(Job("key_rotation", 3600,
                        lambda: bridge.keys.rotate(older_than=days * 86400.0)))
    # Always scheduled: besides sp_signing_key_rotation_days, it gives a signing certificate
    # near its expiry a successor in time (bridge.sp_keys.manager.SamlKeys.rotation_due).
    sp_days = bridge.settings.sp_signing_key_rotation_days
    jobs.append(Job("sp_signing_key_rotation", 3600, lambda: bridge.sp_keys.rotate_if_due(
        rotation_seconds=sp_days * 86400.0 if sp_days else None)))
    return jobs


def start_scheduler(bridge: Services, idps: IdpAdmin) -> Scheduler:
    scheduler = Scheduler(bridge.db, standard_jobs(bridge, idps), bridge.clock.now)
    scheduler.start()
    return scheduler
