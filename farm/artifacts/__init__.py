"""The artifact store: code snapshots uploaded once by the submitter, fetched by digest.

Three kinds behind one :class:`ArtifactStore` protocol, chosen by the ``artifacts``
setting: ``redis`` (the broker itself, no other shared service), an absolute
folder (a shared mount) and ``s3://bucket/prefix``. Store modules are imported
only when opened, so reading settings costs neither redis-py nor boto3.
"""

from __future__ import annotations

from farm.artifacts.base import ArtifactError, ArtifactMissing, ArtifactStore
from farm.artifacts.locations import open_artifacts
from farm.core.locations import check_location

__all__ = ["ArtifactError", "ArtifactMissing", "ArtifactStore", "check_location", "open_artifacts"]
