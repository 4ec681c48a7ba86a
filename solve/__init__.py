"""Solving and scoring FCNs: the solve loop, segmentation metrics and visualisation."""
