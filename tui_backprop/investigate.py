"""View models of the investigation tools: drill-down, gradient check, boundary, diagram.

Like `view.py`, this reads a Stepper-like source and returns small frozen
records for the pure-Rich renderables; no Textual or Rich import here.  All of
it is on demand: the drill-down explains one cell when its cursor moves, the
boundary classifies its grid when the iteration changes, the diagram reads a
window of the history.  Nothing here runs while `continue` runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.inspect.boundary import Boundary, NotTwoD, decision_boundary, frame_params
from core.inspect.explain import Explanation, explain, grid_index, idx_text
from core.inspect.gradcheck import GradcheckResult, NotApplicable, checkable
from core.model.config import Config
from tui_backprop.view import PanelData

__all__ = ["cell_index", "idx_text"]
SPAN = 256  # iterations of history the diagram's sparklines cover


def cell_index(shape: tuple[int, ...], row: int, col: int) -> tuple[int, ...]:
    """The array index of a heatmap cell (matrices as is, vectors as a row, 3-D as N·K rows)."""
    return grid_index(shape, row, col)


def array_key(panel: PanelData) -> str | None:
    """The frame key of the array a panel shows (its cache key names it), None if pending."""
    if panel.array is None or panel.key == "":  # "" = a derived array (ΔW): nothing stored
        return None
    return str(panel.cache_key[1])


# --------------------------------------------------------------------------- drill-down
@dataclass(frozen=True)
class DrillData:
    explanation: Explanation
    where: str  # "it 12 · output of dL/dW1"


def drill(src: Any, panel: PanelData, cell: tuple[int, int], terms: int) -> DrillData | None:
    """Explain the cell under a panel's cursor; None when the panel shows no array."""
    key = array_key(panel)
    if key is None:
        return None
    index = cell_index(tuple(panel.array.shape), *cell)
    if panel.transposed:  # the panel shows h1ᵀ: its cell (i, j) is h1[j, i]
        index = tuple(reversed(index))
    e = explain(src.machine, src.frame, key, index, terms=terms)
    it = "init" if src.iteration < 0 else f"it {src.iteration}"
    return DrillData(e, f"{it} · {panel.title}")


# --------------------------------------------------------------------------- gradient check
@dataclass(frozen=True)
class GradcheckData:
    """A finished check (or why there is none), ready to draw."""

    title: str
    message: str = ""  # "not applicable: …" when there is no result
    passed: bool = False
    max_rel: float = math.nan
    threshold: float = 0.0
    worst: str = ""
    checked: int = 0
    total: int = 0
    skipped: int = 0
    eps: float = 0.0
    rel_error: np.ndarray | None = None
    rows: tuple[tuple[str, float, float, float], ...] = ()  # worst entries: index, a, n, err
    diagnosis: str = ""  # what kind of mistake a FAIL looks like (user code, core/user)
    nonfinite: int = 0  # entries whose finite difference was NaN/Inf


def gradcheck_key(src: Any) -> str:
    """The gradient the check applies to at the cursor; raises NotApplicable otherwise."""
    op = src.op
    try:
        checkable(op.key)
    except NotApplicable:
        raise NotApplicable(f"{op.name} ({op.phase}) is not a gradient checked against L; "
                            "gradcheck applies to dL/dW, dL/db and dL/dz") from None
    if src.iteration < 0:
        raise NotApplicable("gradcheck needs an iteration, not the init ops")
    return op.key


def not_applicable(src: Any, why: str) -> GradcheckData:
    return GradcheckData(f"gradient check at {src.op.name}", f"not applicable: {why}")


def gradcheck_data(result: GradcheckResult, name: str, iteration: int, dtype: str
                   ) -> GradcheckData:
    """Turn a core result into the view: verdict, worst entry, the worst few, the heatmap."""
    rel = result.rel_error
    flat = np.flatnonzero(~np.isnan(rel))  # the sampled entries, in the order checked
    order = np.argsort(-rel.reshape(-1)[flat], kind="stable")[:8]
    rows = tuple((idx_text(tuple(int(i) for i in np.unravel_index(flat[p], rel.shape))),
                  float(result.analytic[p]), float(result.numeric[p]),
                  float(rel.reshape(-1)[flat[p]])) for p in order)
    f64 = "" if dtype == "float64" else f" (a float64 copy of this {dtype} run)"
    return GradcheckData(f"{name} against central differences of L w.r.t. {result.wrt}, "
                         f"iteration {iteration}{f64}", "", result.passed,
                         result.max_rel_error, result.threshold,
                         f"{result.wrt}{idx_text(result.worst_index)}", result.checked,
                         rel.size, result.skipped_kinks, result.eps, rel, rows,
                         nonfinite=result.nonfinite)


# --------------------------------------------------------------------------- decision boundary
@dataclass(frozen=True)
class BoundarySpec:
    """Everything the boundary needs, captured on the UI thread (safe to draw later)."""

    key: tuple  # changes when the picture would
    cfg: Config | None
    params: dict[str, np.ndarray]
    X: np.ndarray | None
    labels: np.ndarray | None
    n_classes: int
    caption: str
    message: str = ""  # why there is no picture


def boundary_spec(src: Any) -> BoundarySpec:
    m, frame = src.machine, src.frame
    it = src.iteration
    when = "initial weights" if it < 0 else f"start of it {it}"
    if m.X.shape[1] != 2:
        msg = f"decision boundary needs 2-D inputs; this dataset has {m.X.shape[1]}"
        return BoundarySpec(("none", m.X.shape[1]), None, {}, None, None, 0, when, msg)
    return BoundarySpec((it, id(frame), m.cfg), m.cfg, frame_params(frame), m.X, m.labels,
                        m.data.n_classes, when)


def boundary_at(spec: BoundarySpec, rows: int, cols: int) -> Boundary | str:
    """The picture for a rows × cols pixel grid, or the reason there is none."""
    if spec.cfg is None or spec.X is None or spec.labels is None:
        return spec.message
    try:
        return decision_boundary(spec.cfg, spec.params, spec.X, spec.labels, spec.n_classes,
                                 rows, cols)
    except NotTwoD as exc:
        return str(exc)


# --------------------------------------------------------------------------- network diagram
@dataclass(frozen=True)
class Flow:
    """One weight layer's recent gradient flow: ‖∇W‖, update ratio, saturation."""

    layer: int
    grad: np.ndarray
    ratio: np.ndarray
    sat: np.ndarray | None  # sampled values only; None for the output layer


@dataclass(frozen=True)
class DiagramData:
    sizes: tuple[int, ...]
    nodes: tuple[tuple[str, ...], ...]  # what each layer holds: X | z, h, dL/dh, dh/dz, dL/dz
    edges: tuple[tuple[str, ...], ...]  # what each weight layer holds: W, b, dL/dW, dL/db
    tail: tuple[str, ...]  # the loss column
    output: str  # the current op's output, as an item name
    inputs: tuple[str, ...]
    op: str
    formula: str
    flows: tuple[Flow, ...]
    span: tuple[int, int]  # history iterations [a, b) the flows cover


def item(key: str) -> str:
    """The diagram item an array key belongs to (updates and clips land on their array)."""
    for suffix in ("_new", "_init", "_clip"):
        key = key.removesuffix(suffix)
    special = {"loss": "L", "labels": "y", "grad_norm": "‖∇‖"}
    return special.get(key, key.replace("_", "/"))


def diagram(src: Any, span: int = SPAN) -> DiagramData:
    prog = src.machine.program  # the cursor's config: knobs may add clip ops
    depth, bias = prog.depth, prog.cfg.bias
    nodes = [("X",)] + [(f"z{l}", f"h{l}", f"dL/dh{l}", f"dh{l}/dz{l}", f"dL/dz{l}")
                        for l in range(1, depth + 1)]
    edges = [tuple(x for x in (f"W{l}", f"b{l}" if bias else "", f"dL/dW{l}",
                               f"dL/db{l}" if bias else "") if x)
             for l in range(1, depth + 1)]
    op = src.op
    inputs = tuple(dict.fromkeys(item(k) for k in op.inputs if item(k) != item(op.key)))
    hist = src.history
    stop = min(len(hist), max(src.iteration + 1, 0))
    start = max(0, stop - span)
    view = hist.view(start, stop)
    ratio = view.update_ratio
    flows = []
    for l in range(depth):
        sat = None
        if l < depth - 1:
            col = view.saturation[:, l]
            sat = col[np.isfinite(col)]
        flows.append(Flow(l + 1, view.grad_norm[:, l].copy(), ratio[:, l].copy(), sat))
    return DiagramData(tuple(prog.sizes), tuple(nodes), tuple(edges), ("y", "L", "‖∇‖"),
                       item(op.key), inputs, op.name, op.formula, tuple(flows), (start, stop))
