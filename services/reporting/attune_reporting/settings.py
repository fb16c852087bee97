"""reporting's settings: the shared base plus the materializer's and the rebuild's knobs."""

from pydantic import Field

from attune_shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """Configuration of the reporting service."""

    service_name: str = "reporting"
    attune_http_port: int = Field(default=8084, ge=0, le=65535)
    # The materializer runs after every batch; this sweep also picks up marks left by a crash.
    attune_reporting_sweep_interval_s: float = Field(default=5.0, gt=0, le=3600)
    # While the consumer is behind (a full batch, or more records waiting on its partitions),
    # materialize at most this often, so a backlog's marks are folded into one recomputation per
    # cell; a batch that leaves nothing waiting materializes once the share's pause (below) is over.
    attune_reporting_backlog_materialize_s: float = Field(default=2.0, ge=0, le=600)
    # ... and spend at most about this share of the time materializing: the pause after a run is at
    # least its duration x (1 / share - 1), so a run that reads big cells is not repeated after every
    # batch (a backfill's cost stays linear in its size; a steady trickle does not fall behind).
    attune_reporting_backlog_materialize_share: float = Field(default=0.25, gt=0, le=1)
    attune_reporting_lock_lease_s: float = Field(default=60.0, ge=1, le=3600)
    attune_reporting_gauge_refresh_s: float = Field(default=60.0, gt=0, le=86_400)
    attune_reporting_max_months: int = Field(default=120, ge=1, le=600)
    attune_reporting_default_months: int = Field(default=12, ge=1, le=120)
    attune_reporting_rebuild_batch_records: int = Field(default=2000, ge=1, le=100_000)
    # After the pointer swap, batches the live service started on the old database finish within this.
    attune_reporting_rebuild_grace_s: float = Field(default=3.0, ge=0, le=600)
