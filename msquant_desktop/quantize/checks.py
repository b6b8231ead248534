"""Every check that can fail a quantization before it starts, with a message and what to do.

The form runs these (in a thread) to refuse a bad start; the worker runs them again first thing, so a
job launched by hand or by the CLI fails fast with the same words instead of a deep traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.domain.quantize import RECIPE_SCHEME, SCHEMES_BY_ID, QuantizeRequest, request_problems
from msquant_desktop.quantize.calibration import DatasetError, dataset_files
from msquant_desktop.quantize.model_folder import (
    ModelFolderError,
    ModelInfo,
    describe_indivisible,
    indivisible_layers,
    inspect_model_folder,
)


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str = ""
    layers: tuple[str, ...] = ()  # for indivisible widths: the layers the user may add to the ignore list


@dataclass(frozen=True)
class CheckReport:
    problems: tuple[Problem, ...]
    model: ModelInfo | None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_request(request: QuantizeRequest) -> CheckReport:
    """All problems with `request` (model folder, scheme, data, widths, output folder)."""
    problems = [Problem(p) for p in request_problems(request)]
    info: ModelInfo | None = None
    try:
        info = inspect_model_folder(request.model)
    except ModelFolderError as exc:
        problems.append(Problem(str(exc), "choose a local Hugging Face model folder (with config.json)"))
    if info is not None and info.already_quantized:
        problems.append(
            Problem(f"{info.path} is already quantized (its config.json has a quantization_config)")
        )
    if request.dataset:
        try:
            dataset_files(request.dataset)
        except DatasetError as exc:
            problems.append(Problem(str(exc), "use a local .jsonl, .json or .txt file, or a folder of them"))
    if request.scheme == RECIPE_SCHEME and request.recipe and not Path(request.recipe).expanduser().is_file():
        problems.append(Problem(f"recipe file {request.recipe} does not exist"))
    scheme = SCHEMES_BY_ID.get(request.scheme)
    if info is not None and scheme is not None and scheme.group_size:
        bad = indivisible_layers(info, scheme.group_size, request.ignore)
        if bad:
            problems.append(
                Problem(
                    describe_indivisible(bad, scheme.group_size, info.linear_shapes),
                    "add the named layers to the ignore list",
                    tuple(bad),
                )
            )
    if RUN_DIR_PLACEHOLDER not in request.out:
        out = Path(request.out).expanduser()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            problems.append(
                Problem(f"output folder {out} already exists and is not empty", "choose a new folder")
            )
        if info is not None and out.resolve() == info.path.resolve():
            problems.append(Problem("the output folder is the model folder", "choose a new folder"))
    return CheckReport(tuple(problems), info)
