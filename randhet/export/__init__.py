"""Export stage: trained run folder -> netx HDF5 (``network.net``) with randhet metadata."""

from randhet.export.netx import ExportedLayer, ExportedNetwork, export_run, read_network

__all__ = ["ExportedLayer", "ExportedNetwork", "export_run", "read_network"]
