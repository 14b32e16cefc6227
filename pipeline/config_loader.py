"""TOML -> frozen, typed dataclasses, with `--set section.key=value` overrides.

One root `Config` holds one frozen dataclass per TOML section. The defaults live in one place: the
dataclasses (each key with its help; `sept-pipeline config keys` lists them, `config show` prints them
resolved). Loading order: those defaults, then the named recipe (`configs/recipes/NAME.toml`, shipped
with the package; its `[for_method.<method>.<section>]` tables, where the original trained a variant
otherwise, go over its plain sections for that method only), then the user's `--config FILE`, then each
`--set`. The recipe goes under the user's
layers so that a config file or a --set can still change one of its values; which recipe is used is
decided first (`tune --recipe`, else `--set recipe.name=...`, else the config file's `[recipe] name`,
else the default).
Any unknown key, wrong type or missing file is a one-line UserError naming the file and key.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cache.errors import UserError
from stages.backbones.config import BackboneConfig, TextConfig
from stages.data.config import DataConfig
from stages.neighbors.config import NeighborsConfig
from stages.fields import opt
from stages.shipped import configs_dir
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig

RECIPES_DIR = configs_dir() / "recipes"
DEFAULT_RECIPE = "palm"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


@dataclass(frozen=True)
class RecipeConfig:
    name: str = opt(DEFAULT_RECIPE, "Named training recipe (configs/recipes/NAME.toml, layered under --config and "
                                    "--set); `sept-pipeline config recipes` lists them with the sources they cite.")

    def __post_init__(self):
        from cache.errors import UserError

        if self.name not in recipe_names():
            raise UserError(f"recipe {self.name!r}: unknown (known: {', '.join(recipe_names())}; "
                            f"each is a file under {RECIPES_DIR})")


@dataclass(frozen=True)
class Config:
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    neighbors: NeighborsConfig = field(default_factory=NeighborsConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sept: SeptConfig = field(default_factory=SeptConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> "Config":
        """A copy with some keys of one section changed (validated again)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path}: not found (expected a TOML file)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {path}: not valid TOML ({e})") from None


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check `value` against a field type; allow int -> float, nothing else implicit."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):  # e.g. float | str: the first member that takes the value
        for member in typing.get_args(typ):
            try:
                return _coerce(value, member, where)
            except UserError:
                continue
    elif typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is list or origin is list:
        if isinstance(value, list):
            return list(value)
    elif typ is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - only the types above are used by config sections
        return value
    name = getattr(typ, "__name__", None) or str(typ).replace(" | ", " or ")
    raise UserError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")


def typed_value(value: Any, typ: Any, where: str) -> Any:
    """`value` checked against a field type as config files are (int -> float, nothing else implicit);
    UserError "`where`: expected ..., got ..." otherwise. The run record reads its numbers with it too."""
    return _coerce(value, typ, where)


# Keys that moved: a config that still sets one gets told where it went.
_MOVED = {("neighbors", "boundary_filter"): "sept.boundary_filter (the class boundary is now applied at tune time, "
                                            "against the training classes only)",
          ("sept", "generation_key"): "sept.generation (\"auto\", a generation key or a name; tune reads the "
                                      "store and no longer derives the key from [neighbors])"}


def _merge(base: dict, update: dict, source: str) -> dict:
    """Merge a parsed TOML dict into `base` (section -> key -> value), checking every key."""
    out = {k: dict(v) for k, v in base.items()}
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    for section, values in update.items():
        if section not in sections:
            raise UserError(f"{source}: unknown section [{section}] (known: {', '.join(sections)})")
        if not isinstance(values, dict):
            raise UserError(f"{source}: [{section}] must be a table of keys")
        types = _field_types(hints[section])
        for key, value in values.items():
            if (section, key) in _MOVED:
                raise UserError(f"{source}: key {section}.{key} moved to {_MOVED[section, key]}")
            if key not in types:
                raise UserError(f"{source}: unknown key {section}.{key} (known: {', '.join(types)})")
            out.setdefault(section, {})[key] = _coerce(value, types[key], f"{source}: key {section}.{key}")
    return out


def parse_override(text: str) -> dict:
    """`section.key=value` -> {section: {key: value}}; the value is read as TOML, else as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"--set {text!r}: expected section.key=value (e.g. train.epochs=5)")
    lhs, rhs = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {rhs.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs.strip()
    return {section: {key: value}}


def build(layers: dict) -> Config:
    hints = typing.get_type_hints(Config)
    sections = {}
    for f in dataclasses.fields(Config):
        sections[f.name] = hints[f.name](**layers.get(f.name, {}))
    return Config(**sections)


def recipe_file(name: str) -> Path:
    path = RECIPES_DIR / f"{name}.toml"
    if not isinstance(name, str) or not name or "/" in name or not path.is_file():
        raise UserError(f"recipe {name!r}: unknown (known: {', '.join(recipe_names())}; each is a file under "
                        f"{RECIPES_DIR})")
    return path


def recipe_record(name: str) -> dict:
    """What a run records of its recipe: the name, the source the file states, and the file's hash."""
    from cache.fingerprint import sha256_file, short

    path = recipe_file(name)
    return {"name": name, "source": read_toml(path).get("source", ""), "file_sha256": short(sha256_file(path))}


# What a recipe may set: how the original trained (optimizer, schedule, prompt, towers, data handling, text),
# never which method, data split of a run (seed, shots, fold), SEPT or backbone: those are the experiment's.
RECIPE_SECTIONS = ("train", "method", "data", "text")
_RECIPE_FORBIDDEN = {("method", "name"), ("data", "seed"), ("data", "shots"), ("data", "fold"),
                     ("data", "eval_split")}
FOR_METHOD = "for_method"


def _recipe_sections(path: Path, sections: dict, where: str) -> dict:
    for section, values in sections.items():
        if section not in RECIPE_SECTIONS:
            raise UserError(f"recipe file {path}: {where}[{section}]: a recipe sets only "
                            f"{', '.join(RECIPE_SECTIONS)} (the experiment chooses the rest)")
        for key in values if isinstance(values, dict) else ():
            if (section, key) in _RECIPE_FORBIDDEN:
                raise UserError(f"recipe file {path}: {where}{section}.{key}: a recipe never sets it (the run does)")
    return _merge({}, sections, str(path))


def _recipe_layer(name: str, method: str | None = None) -> dict:
    """A recipe file's config sections for `method` (its top-level `source` is provenance, not config; its
    `[for_method.M]` tables apply to method M only, over the plain sections)."""
    from stages.tuning.methods import method_names

    path = recipe_file(name)
    raw = read_toml(path)
    if not isinstance(raw.get("source"), str) or not raw["source"].strip():
        raise UserError(f"recipe file {path}: missing top-level key source = \"...\" (where the recipe comes from)")
    if "recipe" in raw:
        raise UserError(f"recipe file {path}: a recipe cannot name another recipe ([recipe] section)")
    per_method = raw.get(FOR_METHOD, {})
    unknown = sorted(set(per_method) - set(method_names())) if isinstance(per_method, dict) else []
    if not isinstance(per_method, dict) or unknown:
        what = ", ".join(unknown) if unknown else repr(per_method)
        raise UserError(f"recipe file {path}: [{FOR_METHOD}] {what}: not a method name (known: "
                        f"{', '.join(method_names())})")
    layer = _recipe_sections(path, {k: v for k, v in raw.items() if k not in ("source", FOR_METHOD)}, "")
    for m, sections in per_method.items():
        checked = _recipe_sections(path, sections, f"{FOR_METHOD}.{m}.")
        if m == method:
            layer = _merge(layer, checked, str(path))
    return layer


def recipe_methods(name: str) -> list[str]:
    """The methods a recipe trains differently from its plain sections (its [for_method.M] tables)."""
    return sorted(read_toml(recipe_file(name)).get(FOR_METHOD, {}))


def _chosen_recipe(recipe: str | None, file_layer: dict, set_layers: list[dict]) -> str:
    """The recipe to layer: the explicit one, else the last --set recipe.name, the config file's, the default."""
    if recipe:
        return recipe
    for layer in reversed(set_layers):
        if "name" in layer.get("recipe", {}):
            return layer["recipe"]["name"]
    if "name" in file_layer.get("recipe", {}):
        return file_layer["recipe"]["name"]
    return DEFAULT_RECIPE


def _chosen_method(method: str | None, file_layer: dict, set_layers: list[dict]) -> str:
    """The run's method, which picks a recipe's [for_method] table: `method` (tune --method), else the last
    --set method.name, else the config file's, else the default."""
    if method:
        return method
    for layer in (*reversed(set_layers), file_layer):
        if "name" in layer.get("method", {}):
            return layer["method"]["name"]
    return MethodConfig().name


def load_config(
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    recipe: str | None = None,
    method: str | None = None,
) -> Config:
    """dataclass defaults -> recipe -> `config_file` -> each override (see the module's doc). `method` (tune's
    --method) names the run's method over every layer; it also picks the recipe's [for_method] table."""
    file_layer: dict = {}
    if config_file is not None:
        file_layer = _merge({}, read_toml(config_file), str(config_file))
    set_layers = [_merge({}, parse_override(text), f"--set {text}") for text in overrides]
    name = _chosen_recipe(recipe, file_layer, set_layers)
    layers: dict = {}
    flag = [{"method": {"name": method}}] if method else []
    for layer in (_recipe_layer(name, _chosen_method(method, file_layer, set_layers)), file_layer, *set_layers,
                  *flag):
        layers = _merge(layers, layer, "")
    layers["recipe"] = {"name": name}
    try:
        return build(layers)
    except TypeError as e:  # a missing required field: none today, kept precise anyway
        raise UserError(f"config: {e}") from None


def with_dataset_template(cfg: Config, spec) -> Config:
    """`text.dataset_template = true`: the dataset config's one `template` becomes the run's `text.templates`
    (a UserError naming the dataset config when it has none); otherwise `cfg` unchanged."""
    if not cfg.text.dataset_template:
        return cfg
    if not spec.template:
        raise UserError(f"config key text.dataset_template: dataset config {spec.path} has no template = \"...{{}}...\" "
                        f"key; add one, or set text.dataset_template=false")
    return cfg.replace("text", templates=[spec.template])


class KeyInfo(typing.NamedTuple):
    section: str
    key: str
    default: Any
    help: str
    identity: bool  # False: changes how a run executes, never what it computes (stages/fields.py)


def describe(cfg_cls=Config) -> list[KeyInfo]:
    """Every key with its default, help and identity mark (as declared by `opt`): `sept-pipeline config keys`."""
    rows = []
    hints = typing.get_type_hints(cfg_cls)
    for sec in dataclasses.fields(cfg_cls):
        for f in dataclasses.fields(hints[sec.name]):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append(KeyInfo(sec.name, f.name, default, f.metadata.get("help", ""),
                                f.metadata.get("identity", True)))
    return rows


def non_identity_keys() -> frozenset[str]:
    """"section.key" of every key declared `identity=False`: a device, a batch size for memory, where logs go.

    The one list of them: a resume may differ in these (pipeline/protocols/runner.py), a rerun sweep does not
    call a run stale for them (pipeline/sweep/grid.py), and the report never labels a variant by them."""
    return frozenset(f"{row.section}.{row.key}" for row in describe() if not row.identity)


def to_toml(cfg: Config) -> str:
    import tomli_w

    return tomli_w.dumps(cfg.to_dict())
