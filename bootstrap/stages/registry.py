"""The stages of `platform up`, in order. Add a stage here; the runner needs no change.

Called by `platform up`, `platform status` and `platform down` (which walks it backwards
for stages that know how to remove what they installed).
"""

from __future__ import annotations

from bootstrap.stages.base import Stage
from bootstrap.stages.cluster import ClusterStage
from bootstrap.stages.gitserver import GitServerStage
from bootstrap.stages.handoff import HandoffStage
from bootstrap.stages.preflight import PreflightStage
from bootstrap.stages.reconciler import ReconcilerStage
from bootstrap.stages.seed import SeedStage
from bootstrap.stages.stubs import certs_stage, dns_stage, secrets_stage
from bootstrap.stages.terraform import TerraformStage
from bootstrap.stages.tools import ToolsStage
from bootstrap.stages.vault import VaultStage


def all_stages() -> list[Stage]:
    return [
        PreflightStage(),
        ToolsStage(),
        ClusterStage(),
        GitServerStage(),
        SeedStage(),
        VaultStage(),
        TerraformStage(),
        ReconcilerStage(),
        secrets_stage(),
        certs_stage(),
        dns_stage(),
        HandoffStage(),
    ]


def stage_names() -> list[str]:
    return [s.name for s in all_stages()]
