"""package and verify: a checksummed (optionally signed) bundle for the device, and the checks it must pass.

>>> import olive_ext
>>> bundle = olive_ext.package("out/onnx", output_path="bundles/tone", zip=True)  # doctest: +SKIP
>>> olive_ext.verify(bundle.zip_path, expect=bundle.digest).ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from olive_ext.deploy.archive import zip_path_of
from olive_ext.deploy.bundle import BUNDLE_NAME, BUNDLE_VERSION
from olive_ext.deploy.bundle import package as write_bundle
from olive_ext.deploy.manifest import MANIFEST, SIGNATURE, manifest_digest, read_manifest
from olive_ext.deploy.verify import VerifyReport
from olive_ext.deploy.verify import verify as verify_bundle
from olive_ext.engine.output import check_model_given
from olive_ext.engine.results import OutputFolder
from olive_ext.errors import Problem, RecipeError, UserInputError
from olive_ext.options import Options, validate_options, with_options_signature
from olive_ext.quiet import api_call

logger = logging.getLogger(__name__)


class PackageOptions(Options):
    """Everything `olive-ext package` takes."""

    model_name_or_path: str = Field(description="auto-opt or generate-adapter output folder")
    output_path: str = Field(
        description="bundle folder; an existing non-empty folder is kept unless overwrite (a name ending in .zip: "
        "that archive, beside the folder of the same name without .zip)"
    )
    zip: bool = Field(
        False, description="also write <output>.zip (deterministic: same inputs, same bytes; kept unless overwrite)"
    )
    name: str | None = Field(
        None,
        pattern=BUNDLE_NAME,
        description="bundle name: letters, digits, '.', '-', '_' (it names the Ollama model in the bundle's "
        "commands); default: the source folder's name, other characters as '-'",
    )
    version: str = Field("0.1.0", pattern=BUNDLE_VERSION, description="bundle version written to the manifest")
    overwrite: bool = Field(False, description="replace an existing output folder (and zip)")

    @field_validator("version", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        """``version=2`` (or YAML's ``version: 1.0``) is the version "2": it was refused as no string."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    sign_key: str | None = Field(
        None,
        description="elliptic-curve private key (PEM) to sign the bundle with OpenSSF model-signing, offline; "
        "writes bundle.sig into it (needs olive-ext[sign]; an encrypted key reads its password from "
        "$OLIVE_EXT_SIGN_KEY_PASSWORD)",
    )


class VerifyOptions(Options):
    """Everything `olive-ext verify` takes."""

    bundle: str = Field(description="bundle folder or .zip")
    no_run: bool = Field(False, description="check files only; do not load the model")
    expect: str | None = Field(
        None, description="the manifest digest `package` printed (sha256 of manifest.json); any other fails"
    )
    public_key: str | None = Field(
        None,
        description="public key (PEM) of the signing key: check bundle.sig with model-signing, offline "
        "(needs olive-ext[sign])",
    )


@dataclass
class Bundle(OutputFolder):
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

    @property
    def digest(self) -> str:
        """sha256 of manifest.json: names every file's content; give it to ``verify(expect=...)``."""
        return manifest_digest(self.path)

    @property
    def signature_path(self) -> Path | None:
        """The model-signing signature, when the bundle was signed."""
        path = self.path / SIGNATURE
        return path if path.is_file() else None


def run_package(opts: PackageOptions) -> Bundle:
    """Write the bundle the options describe."""
    check_model_given(opts.model_name_or_path)  # Path("") is the current folder
    output, archive = Path(opts.output_path), opts.zip
    if output.suffix.lower() == ".zip":  # `-o tone.zip --zip` wrote a folder tone.zip and an archive tone.zip.zip
        output, archive = output.with_suffix(""), True
        logger.info("-o %s names an archive: writing the bundle folder %s and the archive %s", opts.output_path,
                    output, zip_path_of(output))  # fmt: skip
    out = write_bundle(
        Path(opts.model_name_or_path),
        output,
        opts.name,
        opts.version,
        archive,
        opts.overwrite,
        Path(opts.sign_key) if opts.sign_key else None,
    )
    return Bundle(out, zip_path_of(out) if archive else None)


@api_call(False)
def package(model_name_or_path: str | Path, output_path: str | Path, **options: object) -> Bundle:
    """Bundle an auto-opt or generate-adapter output for the device (``olive-ext package``).

    ``options`` are :class:`PackageOptions` fields: ``zip``, ``name``, ``version``, ``overwrite``, ``sign_key``.
    """
    values = {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    return run_package(validate_options(PackageOptions, values))


def run_verify(opts: VerifyOptions) -> VerifyReport:
    """Check the bundle the options name."""
    if opts.public_key is not None and not opts.public_key.strip():  # was taken as no key: "bundle verified", exit 0
        raise UserInputError("--public_key is empty: there is no key to check bundle.sig with, and nothing was checked",
                             hint="give the public key file (PEM) the bundle was signed for, or leave --public_key "
                             "out to check the files only")  # fmt: skip
    return verify_bundle(
        Path(opts.bundle),
        run_model=not opts.no_run,
        expect=opts.expect,
        public_key=Path(opts.public_key) if opts.public_key is not None else None,
    )


@api_call(False)
def verify(bundle: str | Path, *, run_model: bool | None = None, **options: object) -> VerifyReport:
    """Check a bundle folder or zip (``olive-ext verify``): digest, signature, checksums, loading, smoke generation.

    ``options`` are :class:`VerifyOptions` fields, named like the flags: ``no_run``, ``expect``, ``public_key``;
    ``run_model=False`` is ``no_run=True``. Returns the report (``report.ok``, ``report.checks``); bad arguments
    (an unknown keyword with a "did you mean") and unsafe or unreadable archives raise before anything is extracted.
    """
    if run_model is not None:
        if not isinstance(run_model, bool):  # a truthy "no" must not run the model
            raise RecipeError([Problem("run_model", "must be True or False", run_model, has_value=True)], "options")
        if "no_run" in options:
            raise RecipeError([Problem("run_model", "give run_model or no_run, not both")], "options")
        options["no_run"] = not run_model
    return run_verify(validate_options(VerifyOptions, {"bundle": bundle, **options}))


with_options_signature(package, PackageOptions)
with_options_signature(verify, VerifyOptions)
