"""The fast path's step, generated from the live ops' own statements.

`fuse_units` takes the units of the live ops in program order and returns
equivalent units with fewer NumPy calls: an elementwise unit that has a twin
earlier on (every sigmoid layer's σ' = e·h·h) moves up to it, one that has a twin
later on (the L2 term of every layer, the SGD step of every parameter) moves
down, each only past code that does not touch its arrays, and twins on adjacent
slices of one flat arena merge into one call on the union.  Every element still goes
through the same operations in the same order, so the result is bit-identical
to running the ops one by one (what the stepper does).

`loop_source` wraps those statements in the fast path's loop with its metric
bookkeeping; `core/engine/machine.py` compiles it once per Machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.engine.blocked import block_runs
from core.engine.inplace import reuse_dead_inputs
from core.engine.update_pair import merge_update_pair
from core.model import catalog as cat
from core.model.code import Unit, build_function, conflict, render, root, span, unit_from_calls


def _sink(units: list[Unit]) -> list[Unit]:
    """Move each mergeable unit down to just before its next twin, when nothing between
    reads what it writes or writes what it touches."""
    units = list(units)
    sigs = [u.signature() for u in units]
    for k in range(len(units) - 1, -1, -1):
        sig = sigs[k]
        if sig is None or sig not in sigs[k + 1:]:
            continue
        pos = k
        while pos + 1 < len(units) and sigs[pos + 1] != sig and not conflict(
                units[pos], units[pos + 1]):
            units[pos], units[pos + 1] = units[pos + 1], units[pos]
            sigs[pos], sigs[pos + 1] = sigs[pos + 1], sigs[pos]
            pos += 1
    return units


def _hoist(units: list[Unit]) -> list[Unit]:
    """Move each mergeable unit up to just after its previous twin, when nothing between
    writes what it reads or touches what it writes (a hidden layer's σ' = e·h·h joins
    the output layer's, computed earlier in the backward pass)."""
    units = list(units)
    sigs = [u.signature() for u in units]
    for k in range(len(units)):
        sig = sigs[k]
        if sig is None or sig not in sigs[:k]:
            continue
        pos = k
        while pos > 0 and sigs[pos - 1] != sig and not conflict(units[pos - 1], units[k]):
            pos -= 1
        if pos == 0 or sigs[pos - 1] != sig:
            continue  # it cannot reach its twin: leave it where it was
        units.insert(pos, units.pop(k))
        sigs.insert(pos, sigs.pop(k))
    return units


def _merge_pair(a: Unit, b: Unit) -> Unit | None:
    """a and b as one unit over the union of their (adjacent) slices, or None."""
    xs, ys = a.arrays(), b.arrays()
    if len(xs) != len(ys):
        return None
    union: dict[int, np.ndarray] = {}
    direction = None
    for x, y in zip(xs, ys, strict=True):
        sx, sy = span(x), span(y)
        if sx is None or sy is None or sx[0] != sy[0]:
            return None
        d = "ab" if sx[2] == sy[1] else "ba" if sy[2] == sx[1] else None
        if d is None or direction not in (None, d):
            return None
        direction = d
        lo, hi = min(sx[1], sy[1]), max(sx[2], sy[2])
        union[id(x)] = root(x).reshape(-1)[lo:hi]
    calls = tuple((fn, tuple(union[id(v)] if isinstance(v, np.ndarray) else v for v in args))
                  for fn, args in a.calls or ())
    return unit_from_calls(calls)


def _merge_runs(units: list[Unit]) -> list[Unit]:
    """Merge consecutive twins on adjacent slices (independent twins may be reordered)."""
    out: list[Unit] = []
    k = 0
    while k < len(units):
        sig = units[k].signature()
        run = [units[k]]
        while (sig is not None and k + len(run) < len(units)
               and units[k + len(run)].signature() == sig):
            run.append(units[k + len(run)])
        k += len(run)
        if len(run) > 1 and not any(conflict(a, b) for i, a in enumerate(run)
                                    for b in run[i + 1:]):
            run.sort(key=lambda u: (span(u.arrays()[0]) or (0, 0, 0))[1])
            merged = [run[0]]
            for u in run[1:]:
                m = _merge_pair(merged[-1], u)
                if m is None:
                    merged.append(u)
                else:
                    merged[-1] = m
            run = merged
        out.extend(run)
    return out


def fuse_units(units: list[Unit]) -> list[Unit]:
    """The live ops' units with twins merged (fewer calls, same bits)."""
    return _merge_runs(_sink(_hoist(units)))


CHUNK = 256  # full batch: accuracy is computed for this many iterations at once


def chunk_rows(width: int) -> int:
    """Rows of a row-metrics chunk: ~1 MB (it stays in cache), at least 128 (a flush costs
    ~20 NumPy calls whatever its size).  Measured: 468 rows at the seed, 128 at 2-50-2."""
    return max(128, (1 << 17) // max(width, 1))


ROW_COPY = "crows[c_][...] = arena"  # the arena into chunk row c_ (see _as_memcpy)
SAT_EVERY = 32  # fast path samples hidden-unit saturation on iterations i % 32 == 0


def step_units(m: object, bare: bool = False) -> tuple[list[Unit], np.ndarray | None]:
    """The fast path's step: the live ops' units, fused, and the chunk its rows go to.

    With row metrics the norm op's place holds one copy of the arena into the
    chunk's row c_ (after the gradients, before clipping and the update) and the
    metric-only units are left out: the loop computes them a chunk at a time.
    """
    prog, buf = m.program, m.buf  # type: ignore[attr-defined]
    live: list[Unit] = []
    chunk = None
    for op, k in zip(prog.live_ops(), m.live, strict=True):  # type: ignore[attr-defined]
        if prog.row_metrics and op.key == "grad_norm":
            if bare:  # re-executing iterations whose metrics are known: no copy at all
                continue
            arena = buf["metric_rows"]
            chunk = np.empty((chunk_rows(arena.size), arena.size), arena.dtype)
            # a slice assignment (a memoryview one after the in-place pass): the same bytes
            # as np.copyto at ~20% of its cost, which is ~2% of a seed iteration
            live.append(Unit(ROW_COPY, {"crows": list(chunk), "arena": arena}, (arena,),
                             (chunk,)))
        else:
            live.extend(u for u in k.units if not (prog.row_metrics and u.metric))
    if m.full:  # type: ignore[attr-defined]
        live = _negated_input(live, [a for a in (buf["X"], buf.get("X1")) if a is not None])
    # what the loop reads around the step: parameters and data, the metric arena, the
    # outputs argmax and saturation samples read (core/engine/inplace.py)
    keep = [buf[k] for k in ("X", "X1", "y", "labels", "w_sq", "params", "metric_rows")
            if k in buf] + [buf[f"h{l}"] for l in range(1, prog.depth + 1)]
    units = reuse_dead_inputs(fuse_units(live), keep)
    if not m.cfg.lr_decay:  # type: ignore[attr-defined]
        units = merge_update_pair(units, m.hp)  # type: ignore[attr-defined]
    return block_runs([_as_memcpy(u) for u in units]), chunk


def _as_memcpy(u: Unit) -> Unit:
    """The arena copy as a memoryview slice assignment: the same bytes (one memcpy) at
    ~55% of NumPy's slice assignment, measured 0.5-0.7% of a seed iteration.  Done after
    the in-place pass, which reads the unit's arrays (it sees memoryviews as opaque)."""
    if u.src != ROW_COPY:
        return u
    rows, arena = u.env["crows"], u.env["arena"]
    if not (arena.flags.c_contiguous and all(r.flags.c_contiguous for r in rows)):
        return u
    return Unit("crows[c_][:] = arena", {"crows": [memoryview(r) for r in rows],
                                          "arena": memoryview(arena)}, u.reads, u.writes)


def _negated_input(units: list[Unit], fixed: list[np.ndarray]) -> list[Unit]:
    """z1 = X·W1 then −z1 (a sigmoid's first call) as one product (−X)·W1.

    Negation is exact and rounding is symmetric, so (−X)·W1 is −(X·W1) bit for bit
    (a zero's sign aside, which exp ignores); X is the fixed full batch, so −X is made
    once.  Only when nothing else in the step reads z1: the fast path never shows it.
    """
    for k in range(len(units) - 1):
        a, b = units[k], units[k + 1]
        if a.src != "f(b, o)" or not b.calls or b.calls[0][0] is not np.negative:
            continue
        src, z = a.reads[0] if a.reads else None, a.env["o"]
        if src is None or not any(src is x for x in fixed) or b.calls[0][1][0] is not z:
            continue
        others = units[:k] + units[k + 2:]
        if any(u.reads is None and any(isinstance(v, np.ndarray) and np.may_share_memory(v, z)
                                       for v in u.env.values())
               or u.reads is not None and any(np.may_share_memory(r, z) for r in u.reads)
               for u in others):
            continue  # z1 is read elsewhere (e.g. a relu's derivative): keep it
        out = b.calls[0][1][1]
        neg = np.negative(src)
        dot = Unit("f(b, o)", {"f": neg.dot, "b": a.env["b"], "o": out}, (neg, a.env["b"]),
                   (out,))
        rest = unit_from_calls(b.calls[1:]) if len(b.calls) > 1 else None
        return units[:k] + [dot] + ([rest] if rest else []) + units[k + 2:]
    return units


def build_bare_loop(m: object) -> Callable[..., None]:
    """The step alone, for re-executing iterations whose metrics are already known
    (a landing, a step back): bare_loop(count, i0, marks, keep) keeps parameter copies
    as the fast loop does, and computes no metric (row-metrics runs only, where the
    metrics are a separate copy; the same step units, so the same bits)."""
    cfg = m.cfg  # type: ignore[attr-defined]
    units, _ = step_units(m, bare=True)
    body, env = render(units, "f")
    env.update(hp_=m.hp, lr0=cfg.lr, decay=cfg.lr_decay,  # type: ignore[attr-defined]
               pcopy=m.buf["params"].copy)  # type: ignore[attr-defined]
    lines = ["mark_ = next(marks, -1)", "hp_.lr = lr0 / (1.0 + decay * i0)",
             "for i_ in range(i0, i0 + count):", "    if i_ == mark_:",
             "        keep((i_, pcopy()))", "        mark_ = next(marks, -1)"]
    if cfg.lr_decay:
        lines.append("    hp_.lr = lr0 / (1.0 + decay * i_)")
    lines += ["    " + ln for ln in body]
    return build_function("bare_loop", ["count", "i0", "marks", "keep"], lines, env)


def build_loop(m: object) -> Callable[..., None]:
    """The fast path of Machine `m` as one generated function.

    loop(count, i0, j0, loss_l, acc_l, gn_l, wn_l, satb, marks, keep) runs `count`
    iterations from i0 (row j0 of the block), calling keep((i, parameter copy)) at the
    start of each iteration i that the sorted iterator `marks` yields,
    appending per-iteration metrics to the lists (cheaper than NumPy item writes), or
    with row metrics writing them a chunk at a time into the block's arrays (then
    loss_l .. wn_l are those arrays, wn_l of Σ W²), and sampled saturation into `satb`.
    The step itself is the live ops' units (fused); around it: the step size, ‖W‖²
    (free from an L2 loss), accuracy from argmax rows compared a chunk at a time,
    saturation every SAT_EVERY iterations.
    """
    prog, buf, hp, cfg = m.program, m.buf, m.hp, m.cfg  # type: ignore[attr-defined]
    depth, n = prog.depth, prog.n
    rows_mode = prog.row_metrics
    units, chunk = step_units(m)
    body, env = render(units, "f")
    free_wsq = cfg.reg > 0 and cfg.reg_kind == "l2"
    full = m.full  # type: ignore[attr-defined]
    out = buf[f"h{depth}"]
    preds = np.empty((CHUNK, n), np.intp)
    act = cat.ACTIVATIONS[cfg.activation]
    hidden = [(l - 1, buf[f"h{l}"]) for l in range(1, depth)]

    # a sample counts in place (masks allocated once): cheaper in the loop than copying
    # the hidden outputs for the flush to count, measured 0.3-0.6% of a seed iteration
    counters = [(l, act.saturated_counter(h), h.size) for l, h in hidden]

    def sat(j: int, satb: np.ndarray) -> None:
        for l, count, size in counters:
            satb[j, l] = count() / size

    def flush(c: int, j: int, loss: np.ndarray, acc: np.ndarray, gn: np.ndarray,
              wsq: np.ndarray, satb: np.ndarray) -> None:  # rows j − c .. j − 1 of the block
        hp.rows.into(chunk[:c], loss[j - c:j], acc[j - c:j], gn[j - c:j], wsq[j - c:j])

    env.update(hp_=hp, lr0=cfg.lr, decay=cfg.lr_decay, amax=out.argmax, preds=preds,
               rows=list(preds), labels=buf["labels"], cnz=np.count_nonzero, inv_n=1.0 / n,
               CHUNK_=CHUNK, sat=sat, load=m.load_batch,  # type: ignore[attr-defined]
               pred=np.empty(n, np.intp), eq=np.empty(n, bool), equal=np.equal,
               float=float)
    pre: list[str] = ["if i_ == mark_:", "    keep((i_, pcopy()))", "    mark_ = next(marks, -1)"]
    env["pcopy"] = buf["params"].copy
    if not full:
        pre.append("load(i_)")
    if cfg.lr_decay:
        pre.append("hp_.lr = lr0 / (1.0 + decay * i_)")
    if not free_wsq and not rows_mode:  # ‖W‖² before the update, one dot per layer
        ws = [buf[p].reshape(-1) for p in prog.params if p[0] == "W"]
        for l, w in enumerate(ws):
            env[f"wd_{l}"], env[f"wf_{l}"] = w.dot, w
        pre.append("wa((" + "".join(f"float(wd_{l}(wf_{l})), " for l in range(depth)) + "))")
    post = ["wa(hp_.w_sq)"] if free_wsq and not rows_mode else []
    if rows_mode:  # the arena row was copied in place of the norm op: _segment_lines
        env["flush"] = flush
        env["ROWS_"] = len(chunk)  # type: ignore[arg-type]
    elif full:  # keep predictions; compare a chunk of them at once
        post += ["la(hp_.loss)", "ga(hp_.grad_norm)", "amax(1, rows[c_])", "c_ += 1",
                 "if c_ == CHUNK_:",
                 "    aa((cnz(preds == labels, axis=1) * inv_n).tolist())", "    c_ = 0"]
    else:
        post += ["la(hp_.loss)", "ga(hp_.grad_norm)", "amax(1, pred)", "equal(pred, labels, eq)",
                 "acc_l.append(cnz(eq) * inv_n)"]
    if hidden:
        post += ["if i_ % SAT_EVERY_ == 0:", "    sat(j_, satb)"]
        env["SAT_EVERY_"] = SAT_EVERY
    if rows_mode:
        return build_function("fast_loop", ["count", "i0", "j0", "loss_l", "acc_l", "gn_l",
                                            "wn_l", "satb", "marks", "keep"],
                              _segment_lines(body, bool(cfg.lr_decay), bool(hidden)), env)
    lines = ["la, ga, wa, aa = loss_l.append, gn_l.extend, wn_l.extend, acc_l.extend"]
    lines += ["c_ = 0", "mark_ = next(marks, -1)", "hp_.lr = lr0 / (1.0 + decay * i0)",
             "ib = i0 - j0",
             "for j_ in range(j0, j0 + count):", "    i_ = ib + j_"]
    lines += ["    " + ln for ln in pre + body + post]
    if full:
        lines += ["if c_:", "    aa((cnz(preds[:c_] == labels, axis=1) * inv_n).tolist())"]
    return build_function("fast_loop", ["count", "i0", "j0", "loss_l", "acc_l", "gn_l", "wn_l",
                                        "satb", "marks", "keep"], lines, env)


def _segment_lines(body: list[str], lr_decay: bool, hidden: bool) -> list[str]:
    """The row-metrics loop: the step runs in an inner `for` over chunk rows, up to the
    next event (a parameter copy to keep, a saturation sample, a full chunk), so the
    per-iteration bookkeeping is the loop itself; events are handled between segments.
    Same iterations, same order, same calls: the bits do not change."""
    stop = "    stop_ = min(end_, j_ + ROWS_ - c_"
    stop += ", j_ + 1 + (-i_) % SAT_EVERY_)" if hidden else ")"
    lines = ["c_ = 0", "mark_ = next(marks, -1)", "hp_.lr = lr0 / (1.0 + decay * i0)",
             "ib = i0 - j0", "j_ = j0", "end_ = j0 + count",
             "while j_ < end_:",
             "    i_ = ib + j_",
             "    if i_ == mark_:",
             "        keep((i_, pcopy()))",
             "        mark_ = next(marks, -1)",
             stop,
             "    if mark_ > i_:",
             "        stop_ = min(stop_, mark_ - ib)",
             "    off_ = i_ - c_",  # iteration = off_ + chunk row
             "    for c_ in range(c_, c_ + stop_ - j_):"]
    if lr_decay:
        lines.append("        hp_.lr = lr0 / (1.0 + decay * (off_ + c_))")
    lines += ["        " + ln for ln in body]
    lines += ["    c_ += 1", "    j_ = stop_"]
    if hidden:
        lines += ["    if (ib + j_ - 1) % SAT_EVERY_ == 0:", "        sat(j_ - 1, satb)"]
    lines += ["    if c_ == ROWS_:", "        flush(c_, j_, loss_l, acc_l, gn_l, wn_l, satb)",
              "        c_ = 0",
              "if c_:", "    flush(c_, end_, loss_l, acc_l, gn_l, wn_l, satb)"]
    return lines
