"""Widgets of the Projects tab: details, launch form, history."""
