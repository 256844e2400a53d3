"""package and verify: a checksummed bundle for the device, and the checks it must pass before it ships.

>>> import olive_ext
>>> bundle = olive_ext.package("out/onnx", output_path="bundles/tone", zip=True)  # doctest: +SKIP
>>> olive_ext.verify(bundle.zip_path).ok  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from olive_ext.deploy.bundle import package as write_bundle
from olive_ext.deploy.manifest import MANIFEST, read_manifest
from olive_ext.deploy.verify import VerifyReport
from olive_ext.deploy.verify import verify as verify_bundle
from olive_ext.options import Options, validate_options


class PackageOptions(Options):
    """Everything `olive-ext package` takes."""

    model_name_or_path: str = Field(description="auto-opt or generate-adapter output folder")
    output_path: str = Field(description="bundle folder; an existing non-empty folder is kept unless overwrite")
    zip: bool = Field(False, description="also write <output>.zip (deterministic: same inputs, same bytes)")
    name: str | None = Field(None, description="bundle name (default: the source folder's name)")
    version: str = Field("0.1.0", description="bundle version written to the manifest")
    overwrite: bool = Field(False, description="replace an existing output folder")


@dataclass
class Bundle:
    """A written bundle: its folder, its zip (when asked for) and its manifest."""

    path: Path
    zip_path: Path | None

    @property
    def manifest(self) -> dict[str, object]:
        """The bundle's manifest.json."""
        return read_manifest(self.path)

    @property
    def manifest_path(self) -> Path:
        """Where the manifest is."""
        return self.path / MANIFEST


def run_package(opts: PackageOptions) -> Bundle:
    """Write the bundle the options describe."""
    out = write_bundle(
        Path(opts.model_name_or_path), Path(opts.output_path), opts.name, opts.version, opts.zip, opts.overwrite
    )
    return Bundle(out, out.with_suffix(".zip") if opts.zip else None)


def package(model_name_or_path: str | Path, output_path: str | Path, **options: object) -> Bundle:
    """Bundle an auto-opt or generate-adapter output for the device (``olive-ext package``).

    ``options`` are :class:`PackageOptions` fields: ``zip``, ``name``, ``version``, ``overwrite``.
    """
    values = {"model_name_or_path": str(model_name_or_path), "output_path": str(output_path), **options}
    return run_package(validate_options(PackageOptions, values))


def verify(bundle: str | Path, *, run_model: bool = True) -> VerifyReport:
    """Check a bundle folder or zip (``olive-ext verify``): checksums, loading, smoke generation, end of turn.

    Returns the report (``report.ok``, ``report.checks``); an unsafe archive raises before anything is extracted.
    """
    return verify_bundle(Path(bundle), run_model=run_model)
