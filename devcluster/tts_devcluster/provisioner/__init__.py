"""A hostPath dynamic volume provisioner for the local cluster (ADR 0051).

Real clusters provision PersistentVolumes with an external provisioner per StorageClass; the local
cluster has one node (its host), so a directory per claim under ``.devcluster/volumes`` is the
whole storage backend. :mod:`.plan` holds the pure decisions, :mod:`.controller` the watch loop.
"""
