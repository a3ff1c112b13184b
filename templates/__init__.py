"""Jinja2 templates of the generated kernel modules (shipped as package data)."""
