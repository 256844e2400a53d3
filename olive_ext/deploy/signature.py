"""Signing a bundle with OpenSSF model-signing and a local elliptic-curve key, and checking it offline.

``package --sign_key key.pem`` writes ``bundle.sig`` (a Sigstore bundle holding a DSSE envelope over an
in-toto statement that lists every file's sha256, manifest.json included); ``verify --public_key pub.pem``
re-hashes the folder and checks the envelope with the public key alone: no certificate authority, no
transparency log, no network. model-signing is the optional extra ``olive-ext[sign]``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

from olive_ext.deploy.files import UnsafeFileError, hash_regular, read_regular, relative_path_problem
from olive_ext.deploy.manifest import SIGNATURE
from olive_ext.errors import MissingDependencyError, UserInputError

PASSWORD_ENV = "OLIVE_EXT_SIGN_KEY_PASSWORD"
# the curves model-signing accepts (those of Sigstore's protobuf specs)
_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_KEY_HINT = "make one with: openssl ecparam -name prime256v1 -genkey -noout -out key.pem"


def _model_signing(purpose: str) -> Any:
    try:
        import model_signing
    except ImportError as e:
        raise MissingDependencyError("model-signing", purpose, install="'olive-ext[sign]'") from e
    return model_signing


def check_signing_key(key_path: Path) -> None:
    """Fail before any work when model-signing is missing or ``key_path`` is not a usable EC private key."""
    _model_signing("signing a bundle (--sign_key)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key(key_path, "--sign_key")
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError as e:  # encrypted without a password, or a password for a plain key
        raise UserInputError(
            f"--sign_key {key_path}: {e}", hint=f"set {PASSWORD_ENV} to the key's password (or unset it)"
        ) from e
    except ValueError as e:
        if password and "password" in str(e).lower():  # a wrong password: not a reason to make a new key
            raise UserInputError(f"--sign_key {key_path}: {e}",
                                 hint=f"set {PASSWORD_ENV} to this key's password") from e  # fmt: skip
        raise UserInputError(f"--sign_key {key_path} is not a PEM private key ({e})", hint=_KEY_HINT) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else type(key).__name__
        raise UserInputError(
            f"--sign_key {key_path} is a {kind} key; model-signing signs with elliptic-curve keys "
            f"({', '.join(_CURVES)})",
            hint=_KEY_HINT,
        )


def check_public_key(key_path: Path) -> None:
    """Fail before any work when model-signing is missing or ``key_path`` is not a usable EC public key."""
    _model_signing("checking a bundle's signature (--public_key)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(_read_key(key_path, "--public_key"))
    except ValueError as e:
        raise UserInputError(
            f"--public_key {key_path} is not a PEM public key ({e})",
            hint="export it from the signing key: openssl ec -in key.pem -pubout -out pub.pem",
        ) from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise UserInputError(
            f"--public_key {key_path} is not an elliptic-curve key on {', '.join(_CURVES)}",
            hint="pass the public half of the key the bundle was signed with",
        )


def _read_key(path: Path, flag: str) -> bytes:
    try:
        return read_regular(path, 1 << 20)
    except FileNotFoundError as e:
        raise UserInputError(f"{flag} {path} does not exist", hint="pass the path of a PEM key file") from e
    except (UnsafeFileError, OSError) as e:
        raise UserInputError(f"{flag}: {e}", hint="pass the path of a PEM key file") from e


def _hashing_config(model_signing: Any) -> Any:
    # every file but the signature itself; git files are not special in a bundle, so they are hashed too
    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)


def sign_bundle(root: Path, key_path: Path) -> Path:
    """Sign every file of the bundle folder ``root``; returns the path of the signature written into it."""
    check_signing_key(key_path)
    ms = _model_signing("signing a bundle (--sign_key)")
    password = os.environ.get(PASSWORD_ENV)
    signer = ms.signing.Config().use_elliptic_key_signer(
        private_key=key_path,
        password=password.encode() if password else None,  # passed through to cryptography, which wants bytes
    )
    signer.set_hashing_config(_hashing_config(ms)).sign(root, root / SIGNATURE)
    return root / SIGNATURE


def verify_signature(root: Path, public_key: Path) -> tuple[str | None, dict[str, str]]:
    """Check ``root``'s signature with ``public_key``: (None, the signed sha256 of each file) when it holds,
    else (why not in one line, {}).

    model-signing hashes every file and compares with the signed statement; it returns nothing, so the
    digests it checked are read back from the statement it verified (an in-toto payload in ``bundle.sig``):
    ``verify`` compares them with the manifest instead of hashing every file a second time. Its API has
    no way in for our digests either (``hashing.Config`` serializers are private), so this is the one pass.
    Call only on a folder already listed as regular files: model-signing reads every file it finds.
    """
    ms = _model_signing("checking a bundle's signature (--public_key)")
    if not (root / SIGNATURE).is_file():
        return f"the bundle is not signed ({SIGNATURE} is missing)", {}
    config = ms.verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    try:
        config.set_hashing_config(_hashing_config(ms)).verify(root, root / SIGNATURE)
    except Exception as e:  # fail closed: whatever model-signing cannot verify is a failed check, not a crash
        changed = _changed_files(root) if "Hash mismatch" in str(e) else []
        return ("signed content changed: " + ", ".join(changed)) if changed else _one_line(e), {}
    return None, _signed_sha256(root / SIGNATURE)


def _changed_files(root: Path) -> list[str]:
    """Every file whose sha256 differs from the signed statement's (for the message only: the check has failed).
    model-signing names the first mismatch its parallel hashing meets, so which changed file it named varied."""
    signed = _signed_sha256(root / SIGNATURE)
    changed = []
    for name, digest in sorted(signed.items()):
        if relative_path_problem(name):  # a statement naming a path outside the bundle: never read
            continue
        try:
            now = hash_regular(root / name)[0]
        except (UnsafeFileError, OSError):
            now = None
        if now != digest:
            changed.append(name)
    return changed


def _signed_sha256(signature: Path) -> dict[str, str]:
    """Each file's sha256 as the verified statement lists it; {} (the caller hashes) for any other shape."""
    try:
        envelope = json.loads(signature.read_text(encoding="utf-8"))["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        predicate = statement["predicate"]
        serialization = predicate["serialization"]
        if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
            return {}
        return {r["name"]: r["digest"] for r in predicate["resources"] if r.get("algorithm") == "sha256"}
    except (ValueError, KeyError, TypeError, AttributeError, OSError):  # a format this code does not know
        return {}


def _one_line(error: Exception) -> str:
    text = str(error)
    changed = re.findall(r"Hash mismatch for '([^']+)'", text)
    if changed:
        return "signed content changed: " + ", ".join(changed)
    extra = re.findall(r"Extra files found in model '[^']*': (.+?)(?:\"|'\]|$)", text)
    if extra:
        return "files added after signing: " + extra[0]
    missing = re.findall(r"Missing files in model '[^']*': (.+?)(?:\"|'\]|$)", text)
    if missing:  # was "not a model-signing signature olive-ext can read (damaged or replaced: ...)"
        return "files removed after signing: " + missing[0]
    if "Key mismatch" in text:
        return "signed with a different key than --public_key"
    if isinstance(error, (ValueError, KeyError, TypeError)) and "Hash" not in text:  # JSONDecodeError, a missing key
        return f"{SIGNATURE} is not a model-signing signature olive-ext can read (damaged or replaced: {text[:80]})"
    text = " ".join(text.split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
