"""Export stage: trained run folder -> netx HDF5 (``network.net``) with randhet metadata, and
NIR graphs both ways. lava-dl's model: the blocks write the file, the reader never imports the
training code's modules beyond the model of the file's integers."""

from randhet.export.netx import export_run, write_network

__all__ = ["export_run", "write_network"]
