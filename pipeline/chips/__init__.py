"""Chip geometry, planning and windowed reads."""
