"""Thresholds of the quality gate. They are settings like any other (one typed model,
:class:`loyalty_core.settings.QualitySettings`): defaults there; override in ``loyalty.toml`` under
``[quality]`` (e.g. ``clock_skew_minutes = 10``) or as ``LOYALTY_QUALITY__CLOCK_SKEW_MINUTES``. Scoring
parameters are not here: they live in config/scoring.yml.
"""

from __future__ import annotations

from loyalty_core.settings import QualitySettings, Settings


class GateConfig(QualitySettings):
    """The quality settings with the gate's own arithmetic."""

    def quarantine_limit(self, rows: int) -> int:
        """How many failing rows of a batch of ``rows`` rows may be set aside before the batch
        counts as a systemic failure (0: quarantine is off)."""
        if self.quarantine_max_share <= 0:
            return 0
        return max(self.quarantine_floor_rows, int(self.quarantine_max_share * rows))

    @classmethod
    def from_settings(cls, settings: Settings) -> "GateConfig":
        return cls(**settings.quality.model_dump())
