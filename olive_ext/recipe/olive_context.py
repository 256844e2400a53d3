"""What the sections of one Olive-config translation share: the problems found, the key paths (ours -> the
user's), where the config's folder is, and what Olive's own passes must be given as the user wrote it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olive_ext.errors import Problem

LENIENT_HINT = "; or run with --lenient to go on without it"


@dataclass
class Translation:
    """Our recipe mapping, the problems found while translating, and our key paths -> the user's."""

    recipe: dict[str, Any]
    problems: list[Problem]
    paths: dict[str, str] = field(default_factory=dict)

    def user_path(self, path: str) -> str:
        """The user's spelling of one of our key paths (the longest translated prefix is replaced)."""
        best = ""
        for ours in self.paths:
            if len(ours) > len(best) and (path == ours or path.startswith((ours + ".", ours + "["))):
                best = ours
        return self.paths[best] + path[len(best) :] if best else path

    def user_problem(self, problem: Problem) -> Problem:
        user = self.user_path(problem.path)
        return problem if user == problem.path else dataclasses.replace(problem, path=user)


@dataclass
class TranslationContext:
    """What the sections of one translation share."""

    problems: list[Problem]
    paths: dict[str, str]
    base_dir: Path | None
    olive_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # every data config, Olive's form
    olive_data_paths: dict[str, str] = field(default_factory=dict)  # data config name -> its key path
    our_data: set[str] = field(default_factory=set)  # the data configs our `data` expresses completely
    model_needs_olive: list[str] = field(default_factory=list)  # the input_model keys only Olive's loading honours
    olive_model: dict[str, Any] = field(default_factory=dict)  # the Olive model config, for Olive's passes
    # the target accelerator as the Olive config writes it (device, execution provider): Olive's passes generate and
    # validate their config for it, whether or not olive-ext builds for that target
    olive_accelerator: tuple[str, str] | None = None
    # the last pass's own evaluator (Olive evaluates the flow's output with it, in place of the top-level one) and
    # its key path
    pass_evaluator: tuple[Any, str] | None = None
    evaluator_names: list[tuple[str, str]] = field(default_factory=list)  # (name, key path) each pass's evaluator names
    searching: bool = False  # the config has a search_strategy: Olive then searches options left unset too

    def user_path(self, path: str) -> str:
        return Translation({}, [], self.paths).user_path(path)

    def error(self, path: str, message: str, category: Any = None, hint: str | None = None, **kw: Any) -> None:
        self.problems.append(Problem(path, message, hint=hint, category=category, **kw))

    def note(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, severity="note"))

    def unhonoured(self, path: str, message: str, hint: str) -> None:
        """A key the translation cannot honour and would drop: an error, a warning with --lenient."""
        self.problems.append(Problem(path, message, hint=hint + LENIENT_HINT, category="unhonoured"))

    def folders(self) -> list[Path]:
        """Where Olive may have been run from: here, the config's folder and the two above it."""
        bases = [Path(".")]
        if self.base_dir is not None:
            bases += [self.base_dir, *list(self.base_dir.resolve().parents)[:2]]
        return bases

    def resolve(self, name: str, script_dir: str | None = None) -> Path | None:
        """A user file as Olive finds it (relative to the script dir or the folder Olive ran in), or None."""
        if Path(name).is_absolute():
            return Path(name) if is_file(Path(name)) else None
        candidates = []
        for base in self.folders():
            if script_dir is not None:
                candidates.append(base / script_dir / name)
            candidates.append(base / name)
        return next((c.resolve() for c in candidates if is_file(c)), None)


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_azureml_asset(value: Any) -> bool:
    """An Olive resource path that lives in Azure ML (``{type: azureml_model | azureml_registry_model |
    azureml_datastore ...}``)."""
    return isinstance(value, dict) and str(value.get("type", "")).lower().startswith("azureml_")


def located_script(holder: dict[str, Any], at: str, ctx: TranslationContext) -> dict[str, Any] | None:
    """``holder`` (a data config, a metric's user_config, a pass config) with its ``user_script`` and ``script_dir``
    made absolute as Olive finds them (beside the config or in the folder Olive ran in); None, after a named
    ``user_file`` error at ``at``.user_script, when the script is not there. The script's folder becomes the
    script_dir when none is given, so its sibling modules import, as in Olive."""
    script_dir = str(holder["script_dir"]) if holder.get("script_dir") else None
    script = ctx.resolve(str(holder["user_script"]), script_dir)
    if script is None:
        ctx.error(f"{at}.user_script", "the user script is not there", category="user_file",
                  value=holder["user_script"], has_value=True)  # fmt: skip
        return None
    found = find_dir(script_dir, ctx) if script_dir else None
    return {**holder, "user_script": str(script), "script_dir": str(found or script.parent)}


def find_dir(folder: Any, ctx: TranslationContext) -> Path | None:
    for base in ctx.folders():
        if base is not None:
            candidate = base / str(folder)
            try:
                if candidate.is_dir():
                    return candidate.resolve()
            except (OSError, ValueError):
                pass
    return None


def unnest(section: dict[str, Any]) -> dict[str, Any]:
    """Olive's older format nests parameters under `config`; flatten it."""
    inner = section.get("config")
    if isinstance(inner, dict):
        section = {**{k: v for k, v in section.items() if k != "config"}, **inner}
    return section


def nested(section: Any) -> bool:
    return isinstance(section, dict) and isinstance(section.get("config"), dict)
