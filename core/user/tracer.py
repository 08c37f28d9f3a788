"""A line tracer that turns the user's executed lines into recorded ops.

Only frames running code compiled from the user's file are traced (NumPy's own
Python is not).  A line's *inputs* are read just before it runs (the arrays its
names and plain subscripts such as `params["W1"]` refer to, resolved by object
identity to the op, parameter or batch array that made them); its *outputs*
just after (the line event of the next line, or the frame's return): each
name, plain subscript or augmented target it binds whose value is a NumPy
array or scalar.  The value is copied, so later in-place updates do not change
what was recorded.  Evaluating targets and inputs only reads names and
subscripts without calls, so tracing cannot change what the user's code
computes.
"""

from __future__ import annotations

import ast
import operator
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LineInfo:
    """What one statement of the user's file binds and reads, parsed once."""

    line: int
    text: str  # the statement's source, first line stripped (… when it continues)
    targets: tuple[tuple[str, ast.expr], ...]  # (display text, plain expression)
    reads: tuple[ast.expr, ...]
    augmented: bool = False  # x += …: updates an array in place


@dataclass
class Record:
    """One recorded binding: the op-to-be."""

    name: str
    line: int
    func: str  # the innermost function it ran in
    top: str  # the contract function on the stack: init, loss, backward, update
    value: np.ndarray
    inputs: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)
    key: str = ""


def _plain(node: ast.AST) -> bool:
    """A name or subscript chain with constant/name indices and no calls."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Subscript):
        return _plain(node.value) and all(isinstance(n, ast.Name | ast.Constant | ast.Slice |
                                                     ast.Tuple | ast.UnaryOp | ast.Load)
                                          or isinstance(n, ast.expr_context | ast.unaryop)
                                          for n in ast.walk(node.slice))
    return False


def _target_nodes(stmt: ast.stmt) -> list[ast.expr]:
    out: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        for t in stmt.targets:
            out.extend(t.elts if isinstance(t, ast.Tuple | ast.List) else [t])
    elif isinstance(stmt, ast.AugAssign | ast.AnnAssign) and getattr(stmt, "value", None):
        out.append(stmt.target)
    return [t for t in out if _plain(t) and not (isinstance(t, ast.Name) and t.id == "_")]


def parse_lines(source: str, filename: str) -> dict[int, LineInfo]:
    """Statement info keyed by every line the statement spans (line events may
    fire on any of them)."""
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    info: dict[int, LineInfo] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(node, ast.FunctionDef | ast.ClassDef
                                                         | ast.AsyncFunctionDef):
            continue
        targets = tuple((ast.unparse(t), t) for t in _target_nodes(node))
        value = getattr(node, "value", None)
        reads: list[ast.expr] = []
        seen: set[str] = set()
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Return | ast.Expr) \
                and value is not None:
            for sub in ast.walk(value):
                if isinstance(sub, ast.Name | ast.Subscript) and isinstance(sub.ctx, ast.Load) \
                        and _plain(sub):
                    text = ast.unparse(sub)
                    if text not in seen:
                        seen.add(text)
                        reads.append(sub)
        if isinstance(node, ast.AugAssign):
            reads.append(node.target)
        first = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
        end = node.end_lineno or node.lineno
        text = first + (" …" if end > node.lineno else "")
        li = LineInfo(node.lineno, text, targets, tuple(reads), isinstance(node, ast.AugAssign))
        for ln in range(node.lineno, end + 1):
            if ln not in info or info[ln].line < node.lineno:  # innermost statement wins
                info[ln] = li
    return info


_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
          ast.Not: operator.not_}


def _value(node: ast.expr, frame: FrameType) -> Any:
    """The value of a plain expression (see `_plain`: names, constants, subscripts, slices)
    in the user's frame, read without eval: never runs code the line did not."""
    if isinstance(node, ast.Name):
        for space in (frame.f_locals, frame.f_globals, frame.f_builtins):
            if node.id in space:
                return space[node.id]
        raise NameError(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Subscript):
        return _value(node.value, frame)[_value(node.slice, frame)]
    if isinstance(node, ast.Slice):
        return slice(*(None if p is None else _value(p, frame)
                       for p in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Tuple):
        return tuple(_value(e, frame) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, frame))
    raise TypeError(f"not a plain expression: {ast.unparse(node)}")


def _read(node: ast.expr, frame: FrameType) -> Any:
    try:
        return _value(node, frame)
    except Exception:  # noqa: BLE001 - an unbound name or a missing key: nothing to record
        return None


class LineTracer:
    """sys.settrace hook recording the user's array bindings, line by line."""

    def __init__(self, filename: str, lines: dict[int, LineInfo], known: dict[int, str],
                 deadline: float | None = None) -> None:
        self.filename = filename
        self.lines = lines
        self.known = known  # id(live array) -> key: params, batch, earlier records
        self.leaves = set(known.values())  # parameter and batch keys
        self.records: list[Record] = []
        self.keep: list[Any] = []  # live objects whose ids are in `known`
        self.top = ""
        self.deadline = deadline
        self.caught: list[str] = []  # FP warnings of the line running now
        self.error_line: int | None = None
        self._pending: dict[int, tuple[LineInfo, tuple[str, ...], list[str]]] = {}
        self._counts: dict[str, int] = {}

    # ------------------------------------------------------------------ the hooks
    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Callable | None:
        if event == "call" and frame.f_code.co_filename == self.filename:
            return self.local_trace
        return None

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Callable | None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError("the call ran longer than the time limit (an endless loop?)")
        fid = id(frame)
        if event == "line":
            info = self.lines.get(frame.f_lineno)
            pending = self._pending.get(fid)
            if pending is not None and info is not None and pending[0] is info:
                return self.local_trace  # another physical line of the same statement
            self._finish(frame, fid)
            if info is not None:
                self.caught.clear()
                ins = self._inputs(info, frame)
                self._pending[fid] = (info, ins, [])
        elif event == "return":
            self._finish(frame, fid)
            if frame.f_code.co_name == self.top and frame.f_back is not None and \
                    frame.f_back.f_code.co_filename != self.filename and self.top == "loss":
                self._record_return(frame, arg)
        elif event == "exception" and self.error_line is None:
            self.error_line = frame.f_lineno
        return self.local_trace

    # ------------------------------------------------------------------ recording
    def _inputs(self, info: LineInfo, frame: FrameType) -> tuple[str, ...]:
        keys: list[str] = []
        for node in info.reads:
            v = _read(node, frame)
            if isinstance(v, np.ndarray):
                k = self.known.get(id(v))
                if k is not None and k not in keys:
                    keys.append(k)
        return tuple(keys)

    def _finish(self, frame: FrameType, fid: int) -> None:
        pending = self._pending.pop(fid, None)
        if pending is None:
            return
        info, ins, _ = pending
        for text, node in info.targets:
            v = _read(node, frame)
            if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.number):
                if not info.augmented and text.isidentifier() and \
                        self.known.get(id(v)) in self.leaves:
                    continue  # `W1 = params["W1"]`: a new name for a parameter, not an op
                self._add(text, info.line, frame.f_code.co_name, v, ins)
            elif isinstance(v, np.floating | np.integer):
                self._add(text, info.line, frame.f_code.co_name, v, ins)

    def _record_return(self, frame: FrameType, value: Any) -> None:
        if isinstance(value, np.ndarray | np.floating | float | int) and not isinstance(
                value, bool):
            self._add("loss", frame.f_lineno, frame.f_code.co_name, value, (), phase_key="L")

    def _add(self, name: str, line: int, func: str, value: Any, ins: tuple[str, ...],
             phase_key: str = "") -> None:
        base = f"{name}@{line}"
        n = self._counts.get(base, 0) + 1
        self._counts[base] = n
        key = base if n == 1 else f"{base}#{n}"
        rec = Record(name, line, func, self.top, np.array(value, copy=True),
                     tuple(k for k in ins if k != key), list(self.caught), key)
        self.caught.clear()
        if phase_key:
            rec.top = "L"
        self.records.append(rec)
        if isinstance(value, np.ndarray):
            self.known[id(value)] = key
            self.keep.append(value)

    # ------------------------------------------------------------------ running
    def run(self, top: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn(*args) traced; `top` names the contract function (the op phase)."""
        self.top = top
        old = sys.gettrace()
        sys.settrace(self.global_trace)
        try:
            return fn(*args)
        finally:
            sys.settrace(old)
