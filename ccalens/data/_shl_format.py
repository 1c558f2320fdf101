"""Constants of the SHL 2018 text format (shared by the loader and the synthetic generator)."""

from __future__ import annotations

SHL_CLASSES: tuple[str, ...] = ("Still", "Walk", "Run", "Bike", "Car", "Bus", "Train", "Subway")
SHL_FS = 100.0
SEGMENT_LENGTH = 6000
N_VAL_PAPER = 3310
_SENSORS = ("Acc", "Gra", "LAcc", "Gyr", "Mag", "Ori")
RAW_CHANNELS: tuple[str, ...] = (
    *(f"{s}_{a}" for s in _SENSORS for a in "xyz"),
    "Ori_w",
    "Pressure",
)
