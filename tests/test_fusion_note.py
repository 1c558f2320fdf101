"""The fusion section's sentence on principal angles is computed from the run's numbers."""

from __future__ import annotations

from ccalens.experiments.stages.fusion import angles_note


def _row(weights: float, random: float, variates: float) -> dict[str, float]:
    return {"median angle a centred weights (deg)": weights, "median angle a random subspace (deg)": random,
            "median angle a centred variates (deg)": variates}


def test_weights_geometry_like_random_is_called_uninformative() -> None:
    text = angles_note([_row(80.0, 76.0, 12.0), _row(78.0, 77.0, 14.0)])
    assert "79 degrees apart" in text and "about as far as" in text and "76.5" in text and "says little" in text
    assert text.endswith("13 degrees.")


def test_weights_geometry_closer_than_random_is_said_so() -> None:
    text = angles_note([_row(30.0, 76.0, 12.0)])
    assert "closer than" in text and "says little" not in text
