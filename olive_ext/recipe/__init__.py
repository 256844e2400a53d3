"""Recipes: the schema, loading YAML/JSON, and reading Olive run configs."""

from olive_ext.recipe.load import check_recipe, load_recipe, parse_recipe
from olive_ext.recipe.schema import Recipe

__all__ = ["Recipe", "check_recipe", "load_recipe", "parse_recipe"]
