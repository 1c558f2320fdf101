"""Simulation studies that check ccalens's statistics against known population values."""
