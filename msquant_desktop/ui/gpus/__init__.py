"""Widgets of the GPUs tab: plots, tables, the Doctor panel."""
