"""A target as a recipe names it: device class and execution provider."""

from __future__ import annotations

from pydantic import Field, model_validator

from olive_ext.options import StrictModel
from olive_ext.targets.base import PROVIDERS, Device, Target, normalize_provider


class TargetSpec(StrictModel):
    """A device class and the onnxruntime execution provider to build for and measure on."""

    device: Device = "cpu"
    provider: str | None = Field(None, description="execution provider; defaults to the device's first")

    @model_validator(mode="after")
    def _provider_fits_device(self) -> TargetSpec:
        allowed = PROVIDERS[self.device]
        if self.provider is None:
            self.provider = allowed[0]
            return self
        self.provider = normalize_provider(self.provider)
        if self.provider not in allowed:
            raise ValueError(
                f"provider {self.provider!r} does not run on device '{self.device}'; allowed: {', '.join(allowed)}"
            )
        return self

    def target(self) -> Target:
        """The runtime target this spec names (the provider defaulted to the device's first)."""
        return Target(self.device, self.provider or PROVIDERS[self.device][0])
