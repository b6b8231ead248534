"""Widgets of the Clusters tab."""
