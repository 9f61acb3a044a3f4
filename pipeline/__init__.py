"""CrisisLandMark builder: Sentinel-1/2 chips paired with structured land-cover and crisis captions."""

__version__ = "0.1.0"
