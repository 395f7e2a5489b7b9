"""Figures drawn from run records (JSON files); matplotlib only, never torch."""
