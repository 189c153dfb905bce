"""Sparkplug B: the payload schema (``sparkplug_b.proto``) and its generated module."""
