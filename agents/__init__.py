"""The host agent: compute, volume, network and image services on one host."""
